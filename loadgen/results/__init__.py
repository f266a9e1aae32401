"""What a run leaves behind: attempt records, their Arrow schema and Parquet file, and the metrics computed from them."""
