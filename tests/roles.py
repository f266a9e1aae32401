"""Database roles on the embedded server for the tests that need a user who is not a superuser
(superusers skip connection limits and privilege checks)."""

from __future__ import annotations

from typing import Any

import psycopg

from loadgen.db.schema import reset

__all__ = ["login_role"]


def login_role(embedded: Any, name: str, extra: str = "") -> str:
    """A non-superuser login role that may run loadgen (superusers skip connection limits); its DSN."""
    with psycopg.connect(embedded.conninfo, autocommit=True) as c:
        reset(c, 2, 1)  # the tables exist, owned by the superuser
        c.execute(f"DROP OWNED BY {name}") if c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() else None
        c.execute(f"DROP ROLE IF EXISTS {name}")
        c.execute(f"CREATE ROLE {name} LOGIN {extra}")
        c.execute(f"GRANT ALL ON SCHEMA public TO {name}")
        c.execute(f"GRANT ALL ON accounts, transfers TO {name}")
        c.execute(f"GRANT pg_read_all_stats TO {name}")
    return f"host={embedded.socket_dir} port=5432 dbname=postgres user={name}"
