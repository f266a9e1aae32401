"""loadgen: measure optimistic-concurrency contention on PostgreSQL-compatible databases.

Importing this package imports neither Locust nor psycopg: Locust must patch the
standard library (gevent) before psycopg is imported, so the modules that need
them import them where they are used.
"""

__version__ = "0.1.0"
