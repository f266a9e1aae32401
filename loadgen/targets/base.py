"""Targets: how to reach a database, and what its dialect allows.

A target gives a libpq connection string, says whether ``SET TRANSACTION`` /
isolation levels may be sent, and describes itself without secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from loadgen.errors import ConfigError, TargetError
from loadgen.model.knobs import target_problem
from loadgen.targets.embedded import EmbeddedPostgres

__all__ = [
    "Target",
    "EmbeddedTarget",
    "PostgresTarget",
    "make_target",
    "redact_conninfo",
    "dialect_of",
    "scenario_problem",
    "check_cells",
    "TARGETS",
]

TARGETS: tuple[str, ...] = ("embedded", "postgres", "dsql")


class Target(Protocol):
    kind: str
    #: Whether the server accepts an isolation level (DSQL has exactly one and rejects SET TRANSACTION).
    sets_isolation: bool
    #: Whether the engine underneath takes row locks (PostgreSQL); DSQL takes none (loadgen.db.cc).
    takes_row_locks: bool

    def prepare(self, users: int) -> None:
        """Make the server ready for ``users`` concurrent connections, or say why not."""
        ...

    def conninfo(self) -> str:
        """A libpq connection string, secrets included: never log it."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the run's records say about the target: no secrets."""
        ...


def dialect_of(target: Any) -> str:
    """``dsql`` for DSQL and ``--dialect dsql`` targets (DSQL's rules apply), else ``postgresql``."""
    return "dsql" if getattr(target, "dialect", None) == "dsql" or target.kind == "dsql" else "postgresql"


def scenario_problem(dialect: str, scenario: Any) -> str | None:
    """What in ``scenario`` a target of ``dialect`` cannot honour, or None.

    Checked for every cell before any work: on DSQL a lock timeout would be a
    ``set_config('lock_timeout')`` DSQL refuses on every connection, and an isolation
    level other than snapshot would be silently ignored, mislabelling the cell.
    """
    return target_problem(dialect, scenario)  # the knob table says which knobs a dialect refuses


def check_cells(dialect: str, cells: Any) -> None:
    """Refuse, in one line naming the cell, the first cell a target of ``dialect`` cannot run as asked."""
    for cell in cells:
        problem = scenario_problem(dialect, cell.scenario)
        if problem:
            where = f"cell {cell.label}: " if len(cells) > 1 else ""
            raise ConfigError(f"{where}{problem}")


def redact_conninfo(conninfo: str) -> str:
    """The connection string with any password replaced by ``***``."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(conninfo)
    except Exception:
        return "<unparseable connection string>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo(**params)


def _max_connections(conninfo: str) -> tuple[int, int]:
    """(max_connections, connections in use) as the server sees them."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int,"
            " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@dataclass
class EmbeddedTarget:
    """loadgen's own throwaway PostgreSQL, started (or resized) on demand."""

    server: EmbeddedPostgres
    kind: str = "embedded"
    sets_isolation: bool = True
    takes_row_locks: bool = True

    def prepare(self, users: int) -> None:
        self.server.ensure_running(min_connections=users)

    def conninfo(self) -> str:
        return self.server.conninfo

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.server.url, "home": str(self.server.home)}


@dataclass
class PostgresTarget:
    """Any PostgreSQL-compatible server reached by a DSN."""

    dsn: str
    kind: str = "postgres"
    sets_isolation: bool = True
    takes_row_locks: bool = True

    def prepare(self, users: int) -> None:
        import psycopg

        try:
            allowed, in_use = _max_connections(self.dsn)
        except psycopg.Error as e:
            raise TargetError(f"cannot connect to {redact_conninfo(self.dsn)}: {_first_line(e)}") from None
        free = allowed - in_use
        if users + 2 > free:
            raise TargetError(
                f"the run needs {users} connections (one per user) plus 2 for loadgen, but the server "
                f"allows {allowed} and {in_use} are in use; raise max_connections or run fewer users"
            )

    def conninfo(self) -> str:
        return self.dsn

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "dsn": redact_conninfo(self.dsn)}


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def make_target(kind: str, dsn: str | None = None) -> Target:
    if kind == "embedded":
        if dsn:
            raise ConfigError("--dsn is for --target postgres; the embedded target needs none")
        return EmbeddedTarget(EmbeddedPostgres())
    if kind == "postgres":
        if not dsn:
            raise ConfigError("--target postgres needs --dsn (e.g. postgresql://user@host:5432/db)")
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(dsn)
        except Exception:
            raise ConfigError("--dsn is not a valid PostgreSQL connection string or URL") from None
        return PostgresTarget(dsn)
    raise ConfigError(f"unknown target {kind!r}: choose one of {', '.join(TARGETS)}")
