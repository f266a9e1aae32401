"""Targets: how to reach a database, and what its dialect allows.

A target gives a libpq connection string, says whether ``SET TRANSACTION`` /
isolation levels may be sent, and describes itself without secrets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loadgen.errors import ConfigError, TargetError
from loadgen.model.knobs import target_problem
from loadgen.targets.embedded import EmbeddedPostgres

if TYPE_CHECKING:
    import psycopg

    from loadgen.targets.dialect import StatementAudit

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

#: Targets ``make_target`` builds; ``dsql`` is built by the command line (loadgen.cli.dsql), which has its options.
TARGETS: tuple[str, ...] = ("embedded", "postgres", "dsql")


class Target:
    """A database loadgen can drive: three methods every target has, and each optional capability
    declared here with its default (a plain PostgreSQL reached by its connection string).

    Code that opens connections, resets the bank or scales a run out reads these
    attributes; it never probes a target for what it might have.
    """

    kind: str
    #: Whether the server accepts an isolation level (DSQL has exactly one and rejects SET TRANSACTION).
    sets_isolation: bool = True
    #: Whether the engine underneath takes row locks (PostgreSQL); DSQL takes none (loadgen.db.cc).
    takes_row_locks: bool = True
    #: The SQL the run may send: "postgresql", or "dsql" (no TRUNCATE, set-up in small batches).
    dialect: str = "postgresql"
    #: Extra keyword arguments for *each new* connection, called once per connection
    #: (DSQL: a fresh IAM token, so the secret is never part of a connection string); None: none.
    connect_kwargs: Callable[[], dict[str, Any]] | None = None
    #: The psycopg connection class to use (the dialect checker's traced connection); None: the default.
    connection_class: type[psycopg.Connection[Any]] | None = None
    #: How long the pool may keep a connection (DSQL ends them at 60 minutes); None: no limit.
    max_lifetime_s: float | None = None
    #: Restarts the server (fault injection); None when loadgen does not run the server.
    restart: Callable[[], None] | None = None
    #: The statement audit of a ``--dialect dsql`` run; None when nothing is audited.
    audit: StatementAudit | None = None

    def prepare(self, users: int) -> None:
        """Make the server ready for ``users`` concurrent connections, or say why not."""
        raise NotImplementedError

    def conninfo(self) -> str:
        """A libpq connection string, secrets included: never log it."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the run's records say about the target: no secrets."""
        raise NotImplementedError

    @property
    def truncates(self) -> bool:
        """Whether the bank's reset may TRUNCATE the ledger (DSQL has no TRUNCATE)."""
        return self.dialect != "dsql"

    @property
    def underlying(self) -> Target:
        """The target itself, or the one a wrapper (``--dialect dsql``) drives."""
        return self

    @property
    def rebuilt_from_conninfo(self) -> bool:
        """Whether another process reaches this target from ``conninfo()`` alone (no per-connection hooks)."""
        return self.connect_kwargs is None and self.connection_class is None and self.audit is None


def dialect_of(target: Target) -> str:
    """``dsql`` for DSQL and ``--dialect dsql`` targets (DSQL's rules apply), else ``postgresql``."""
    return target.dialect


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
    # psycopg only inside functions here: the command line imports this module before Locust's gevent patching.
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(conninfo)
    except Exception:
        return "<unparseable connection string>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo("", **params)


def _max_connections(conninfo: str) -> tuple[int, int]:
    """(max_connections, connections in use) as the server sees them."""
    import psycopg  # after gevent's patching (see redact_conninfo)

    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int,"
            " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@dataclass
class EmbeddedTarget(Target):
    """loadgen's own throwaway PostgreSQL, started (or resized) on demand."""

    server: EmbeddedPostgres
    kind: str = "embedded"
    sets_isolation: bool = True
    takes_row_locks: bool = True

    def prepare(self, users: int) -> None:
        self.server.ensure_running(min_connections=users)

    def restart(self) -> None:
        self.server.restart()

    def conninfo(self) -> str:
        return self.server.conninfo

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.server.url, "home": str(self.server.home)}


@dataclass
class PostgresTarget(Target):
    """Any PostgreSQL-compatible server reached by a DSN."""

    dsn: str
    kind: str = "postgres"
    sets_isolation: bool = True
    takes_row_locks: bool = True

    def prepare(self, users: int) -> None:
        import psycopg  # after gevent's patching (see redact_conninfo)

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
        from psycopg.conninfo import conninfo_to_dict  # after gevent's patching (see redact_conninfo)

        try:
            conninfo_to_dict(dsn)
        except Exception:
            raise ConfigError("--dsn is not a valid PostgreSQL connection string or URL") from None
        return PostgresTarget(dsn)
    if kind == "dsql":
        raise ConfigError("--target dsql needs its own options (--endpoint, ...): use `loadgen run --target dsql`")
    raise ConfigError(f"unknown target {kind!r}: choose one of {', '.join(TARGETS)}")
