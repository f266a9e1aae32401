"""DSQL rehearsed on any PostgreSQL (``--dialect dsql``): behave like DSQL where it can, audit every statement.

:class:`DsqlRehearsalTarget` wraps a target (the embedded PostgreSQL, usually) so that
loadgen takes its DSQL path (no ``SET TRANSACTION``/isolation level, no TRUNCATE,
set-up in single-statement transactions, batches of at most 1,000 rows) and rehearses
what a DSQL cluster would do to it:

- optimistic concurrency: no lock waits (``lock_timeout`` of 1 ms as a startup
  parameter), and a write-write conflict, whichever way PostgreSQL reports it
  (40001, or 55P03 for a lock not granted), reaches loadgen as DSQL's: SQLSTATE
  40001 with ``(OC000)`` in its text (:class:`DsqlCursor`);
- refusal: a statement DSQL refuses (loadgen.targets.dsql_rules) fails before it is
  sent, with SQLSTATE 0A000, as it would on a cluster;
- afterwards, an audit of what actually went over the wire (loadgen.targets.audit).

On PostgreSQL the same isolation as DSQL (snapshot = REPEATABLE READ) is set as a
startup parameter, not by a statement, so the transfers still conflict with 40001.
"""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg.errors as pg_errors
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loadgen.errors import ConfigError
from loadgen.targets.audit import StatementAudit
from loadgen.targets.base import Target
from loadgen.targets.dsql_rules import DSQL_CONFLICT_MESSAGE, REFUSED_MARKER, refusal
from loadgen.targets.embedded import RUN_DATABASE_PREFIX
from loadgen.targets.scope import RunScope

__all__ = ["DsqlRehearsalTarget", "DsqlCursor", "rehearsal_connection_class"]


class DsqlCursor(psycopg.Cursor[Any]):
    """A cursor that answers like DSQL: refuses what DSQL refuses, reports conflicts as DSQL does.

    A refused statement inside a transaction (or one it would begin) aborts it, as on
    DSQL: the server is handed :data:`~loadgen.targets.dsql_rules.REFUSED_MARKER` in its
    place and fails it, so later statements get 25P02 and COMMIT answers ROLLBACK, from
    the server itself.
    """

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> DsqlCursor:
        text = query if isinstance(query, str) else query.as_string(self.connection) if hasattr(query, "as_string") else str(query)
        refused = refusal(text)
        if refused is not None:
            conn = self.connection
            if not conn.autocommit or conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                try:
                    super().execute(REFUSED_MARKER)
                except psycopg.Error:
                    pass  # expected: the server failed it, and the transaction with it
            raise refused
        try:
            super().execute(query, params, **kwargs)
        except (pg_errors.SerializationFailure, pg_errors.LockNotAvailable):
            # Without lock waits, a write-write conflict is 55P03 or 40001 here; DSQL says 40001 (OC000).
            raise pg_errors.SerializationFailure(DSQL_CONFLICT_MESSAGE) from None
        return self


def rehearsal_connection_class(audit: StatementAudit) -> type[psycopg.Connection[Any]]:
    """The psycopg connection class of a rehearsal: DSQL's cursors, traffic traced by ``audit`` after authentication."""

    class RehearsalConnection(psycopg.Connection[Any]):
        """A psycopg connection whose cursors behave like DSQL's and whose traffic ``audit`` traces."""

        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> RehearsalConnection:
            conn = super().connect(conninfo, **kwargs)
            conn.cursor_factory = DsqlCursor
            audit.attach(conn)
            return conn

        def close(self) -> None:
            audit.detach(self)
            super().close()

    return RehearsalConnection


#: PostgreSQL's equivalent of DSQL's one isolation level, and no lock waits (DSQL takes
#: no row locks), set at connection start.
_SNAPSHOT_OPTION = r"-c default_transaction_isolation=repeatable\ read -c lock_timeout=1ms"


class DsqlRehearsalTarget(Target):
    """Any target, driven as if it were DSQL, with every statement audited."""

    sets_isolation = False
    dialect = "dsql"

    def __init__(self, inner: Target) -> None:
        self.inner = inner
        self.kind: str = inner.kind
        # PostgreSQL driven as DSQL still locks rows underneath; loadgen.db.cc keeps it from waiting.
        self.takes_row_locks = inner.takes_row_locks
        audit = StatementAudit()
        self.audit: StatementAudit | None = audit
        self.connection_class = rehearsal_connection_class(audit)
        self.max_lifetime_s = inner.max_lifetime_s
        self.connect_kwargs = inner.connect_kwargs  # DSQL's fresh token per connection, if the inner target is DSQL
        self.cluster_counters = inner.cluster_counters  # DSQL's CloudWatch metrics, likewise
        self.restart = inner.restart
        params = conninfo_to_dict(inner.conninfo())
        dbname = params.get("dbname") or params.get("user")
        # A run's own database on the embedded server (a worker reaches it by the master's
        # connection string) stands in for DSQL's one database.
        if dbname != "postgres" and not (isinstance(dbname, str) and dbname.startswith(RUN_DATABASE_PREFIX)):
            raise ConfigError(f"--dialect dsql needs the database 'postgres' (DSQL has no other), not {dbname!r}")

    @property
    def underlying(self) -> Target:
        return self.inner

    def prepare(self, users: int) -> None:
        self.inner.prepare(users)

    # A run's scope is the inner target's (its own database or schema).
    @property
    def scope(self) -> RunScope | None:
        return self.inner.scope

    @scope.setter
    def scope(self, value: RunScope | None) -> None:
        self.inner.scope = value

    def begin_run(self, run_id: str, users: int, *, exclusive: bool = False) -> RunScope | None:
        return self.inner.begin_run(run_id, users, exclusive=exclusive)

    def join_run(self, scope: RunScope) -> None:
        self.inner.join_run(scope)

    def end_run(self, *, keep: bool = False) -> str | None:
        return self.inner.end_run(keep=keep)

    def conninfo(self) -> str:
        info = self.inner.conninfo()
        if self.inner.dialect == "dsql":
            return info  # real DSQL: snapshot isolation is all it has
        params = conninfo_to_dict(info)
        params["options"] = f"{params.get('options', '')} {_SNAPSHOT_OPTION}".strip()
        return make_conninfo("", **params)

    def describe(self) -> dict[str, Any]:
        return {
            **self.inner.describe(),
            "dialect": "dsql",
            "dialect_check": "libpq protocol trace of every connection",
            "rehearsal": "no lock waits (lock_timeout 1 ms); conflicts reported as 40001 (OC000); DSQL's refusals raised as 0A000",
        }
