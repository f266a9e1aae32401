"""Where a run goes: the Target protocol and the embedded PostgreSQL, any PostgreSQL by DSN, and Aurora DSQL."""
