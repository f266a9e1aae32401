"""What loadgen does in the database: the bank's schema, reset and invariants, the transaction shapes, the transfer and its retry loop."""
