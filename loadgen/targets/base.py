"""Targets: how to reach a database, and what its dialect allows.

A target gives a libpq connection string, says whether ``SET TRANSACTION`` /
isolation levels may be sent, and describes itself without secrets.

Between ``begin_run`` and ``end_run`` a target works for one run: its connection
string then leads to that run's own database (embedded) or schema (postgres) and
names the run's sessions (:mod:`loadgen.targets.scope`). A target that does not
scope runs (DSQL: one database, nothing to share it with) only prepares for them.

Which target to make, and from what settings, is data: loadgen.targets.spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from loadgen.errors import ConfigError, TargetError, first_line
from loadgen.model.knobs import target_problem
from loadgen.targets.embedded import EmbeddedPostgres
from loadgen.targets.liveruns import RunLock
from loadgen.targets.scope import DEFAULT_APPLICATION_NAME, RunScope, valid_identifier

if TYPE_CHECKING:
    import psycopg  # after gevent's patching: this module may load before Locust

__all__ = [
    "Target",
    "EmbeddedTarget",
    "PostgresTarget",
    "redact_conninfo",
    "without_password",
    "dialect_of",
    "scenario_problem",
    "check_cells",
    "DEFAULT_SCHEMA",
    "Audit",
    "AuditFindings",
]

#: DSQL refuses a transaction that writes more rows than this (54000); exactly this many is allowed.
DSQL_MAX_ROWS_PER_TRANSACTION = 3000


class AuditFindings(Protocol):
    """What a statement audit found (loadgen.targets.audit.AuditReport)."""

    statements: int
    transactions: int
    #: The most rows one transaction wrote.
    max_rows_written: int

    @property
    def ok(self) -> bool: ...
    def to_dict(self) -> dict[str, Any]:
        """statements, transactions, max_rows_written and each violation as {rule, statement, connection}."""
        ...


class Audit(Protocol):
    """A target's check of every statement a run sends (loadgen.targets.audit.StatementAudit: ``--dialect dsql``).

    A Protocol, as psycopg_pool's abc.py does: a target holds an audit, and the run directory
    records its findings, without importing the audit (which builds on this module).
    """

    #: Connections audited, this process's and the workers' (add_remote).
    connections: int

    def check(self) -> AuditFindings: ...
    def add_remote(self, data: dict[str, Any]) -> None:
        """Add a worker process's findings (``AuditFindings.to_dict()`` plus its ``connections``)."""
        ...

    def cleanup(self) -> None: ...


#: --target postgres: where the tables live unless --schema says otherwise.
DEFAULT_SCHEMA = "loadgen"


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
    #: The psycopg connection class to use (the ``--dialect dsql`` rehearsal's traced one); None: the default.
    connection_class: type[psycopg.Connection[Any]] | None = None
    #: How long the pool may keep a connection (DSQL ends them at 60 minutes); None: no limit.
    max_lifetime_s: float | None = None
    #: Restarts the server (fault injection); None when loadgen does not run the server.
    restart: Callable[[], None] | None = None
    #: The statement audit of a ``--dialect dsql`` run; None when nothing is audited.
    audit: Audit | None = None
    #: The live run's corner of the server (its own database or schema); None outside a run.
    scope: RunScope | None = None
    #: The server's own counters over a window (DSQL: its CloudWatch metrics), for run.json's
    #: ``cluster_metrics``; never raises (a problem is one line in ``unavailable``). None: it has none.
    cluster_counters: Callable[[datetime, datetime], dict[str, Any]] | None = None

    def begin_run(self, run_id: str, users: int, *, exclusive: bool = False) -> RunScope | None:
        """Claim a corner of the server for one run, and room for its ``users`` connections,
        or say why not (TargetError). ``exclusive``: the run restarts the server, so it must
        be alone on it. By default: room only (a target that does not scope runs)."""
        self.prepare(users)
        return None

    def join_run(self, scope: RunScope) -> None:
        """Work in a run another process began (a worker)."""
        self.scope = scope

    def end_run(self, *, keep: bool = False) -> str | None:
        """Give the run's corner back (its database dropped unless ``keep``); never raises: the
        run's results come first. A problem worth a warning, or None."""
        self.scope = None
        return None

    def application_name(self) -> str:
        """What the current run's sessions are called on the server (fault injection and left_open look for it)."""
        if self.scope is not None:
            return self.scope.application_name
        from psycopg.conninfo import conninfo_to_dict  # after gevent's patching (see redact_conninfo)

        try:
            return str(conninfo_to_dict(self.conninfo()).get("application_name") or DEFAULT_APPLICATION_NAME)
        except Exception:  # noqa: BLE001 - an odd connection string names nothing
            return DEFAULT_APPLICATION_NAME

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

    def worker_options(self, workers: int) -> dict[str, Any] | None:
        """The options of a :class:`~loadgen.targets.spec.TargetSpec` that a worker process (this machine's
        or another's) makes this target from, one of ``workers`` sharing its connection budget: no secret
        in them. None: no other process can make it (by default: a target that is no kind of the spec)."""
        return None


def dialect_of(target: Target) -> str:
    """``dsql`` for DSQL and ``--dialect dsql`` targets (DSQL's rules apply), else ``postgresql``."""
    return target.dialect


def scenario_problem(dialect: str, scenario: Any) -> str | None:
    """What in ``scenario`` a target of ``dialect`` cannot honour, or None.

    Checked for every cell before any work: on DSQL a lock timeout would be a
    ``set_config('lock_timeout')`` DSQL refuses on every connection, and an isolation
    level other than snapshot would be silently ignored, mislabelling the cell.
    """
    problem = target_problem(dialect, scenario)  # the knob table says which knobs a dialect refuses
    if problem is None and dialect == "dsql" and scenario.transaction == "multi-leg":
        rows = scenario.legs + 2  # the payer, each payee, the ledger row
        if rows > DSQL_MAX_ROWS_PER_TRANSACTION:
            return (
                f"legs = {scenario.legs} writes {rows:,} rows per transfer, beyond DSQL's {DSQL_MAX_ROWS_PER_TRANSACTION:,} rows "
                f"per transaction (every attempt would fail with 54000): at most {DSQL_MAX_ROWS_PER_TRANSACTION - 2:,} legs"
            )
    return problem


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
    from psycopg.conninfo import conninfo_to_dict, make_conninfo  # after gevent's patching: this module may load before Locust

    try:
        params = conninfo_to_dict(conninfo)
    except Exception:
        return "<unparseable connection string>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo("", **params)


def without_password(conninfo: str) -> str:
    """The connection string without its password (what may travel to another process in a message)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo  # after gevent's patching: this module may load before Locust

    params = conninfo_to_dict(conninfo)
    params.pop("password", None)
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
    """loadgen's own throwaway PostgreSQL, started (or grown) on demand; a database per run."""

    server: EmbeddedPostgres
    kind: str = "embedded"
    sets_isolation: bool = True
    takes_row_locks: bool = True
    scope: RunScope | None = None
    _lock: RunLock | None = field(default=None, repr=False)

    def prepare(self, users: int) -> None:
        self.server.ensure_running(min_connections=users)

    def begin_run(self, run_id: str, users: int, *, exclusive: bool = False) -> RunScope:
        if self.scope is not None:
            self.end_run()
        scope = RunScope.new(run_id, own_database=True)
        self._lock = self.server.begin_run(scope, users, exclusive=exclusive)
        self.scope = scope
        return scope

    def join_run(self, scope: RunScope) -> None:
        self.scope, self._lock = scope, None

    def end_run(self, *, keep: bool = False) -> str | None:
        scope, lock = self.scope, self._lock
        self.scope, self._lock = None, None
        if scope is None or lock is None:
            return None  # joined, not begun: the beginner ends it
        return self.server.end_run(scope, lock, keep_database=keep)

    def worker_options(self, workers: int) -> dict[str, Any] | None:
        # The server's unix socket: workers on this machine only, the server's home in their environment.
        return {"kind": "embedded"}

    def restart(self) -> None:
        """Fault injection: restart the server, refused if it would cut another run."""
        self.server.restart(self.scope)

    def conninfo(self) -> str:
        if self.scope is None or self.scope.database is None:
            return self.server.conninfo
        return self.server.conninfo_for(self.scope.database, self.scope.application_name)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "url": self.server.url, "home": str(self.server.home)}
        if self.scope is not None:
            out["database"] = self.scope.database
        return out


@dataclass
class PostgresTarget(Target):
    """Any PostgreSQL-compatible server reached by a DSN; the tables live in ``schema``, one run at a time."""

    dsn: str = field(repr=False)
    kind: str = "postgres"
    sets_isolation: bool = True
    takes_row_locks: bool = True
    schema: str = DEFAULT_SCHEMA
    #: --schema given (a schema the role cannot create is then refused, not replaced).
    schema_given: bool = False
    scope: RunScope | None = None
    _holder: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not valid_identifier(self.schema):
            raise ConfigError(f"--schema must be a lower-case SQL name (letters, digits, _; at most 63), not {self.schema!r}")

    def prepare(self, users: int) -> None:
        import psycopg  # after gevent's patching: this module may load before Locust

        try:
            allowed, in_use = _max_connections(self.dsn)
        except psycopg.Error as e:
            raise TargetError(f"cannot connect to {redact_conninfo(self.dsn)}: {first_line(e)}") from None
        free = allowed - in_use
        if users + 2 > free:
            raise TargetError(
                f"the run needs {users} connections (one per user) plus 2 for loadgen, but the server "
                f"allows {allowed} and {in_use} are in use; raise max_connections or run fewer users"
            )

    def begin_run(self, run_id: str, users: int, *, exclusive: bool = False) -> RunScope:
        """Hold the schema's advisory lock on a session of its own for the whole run, create the schema."""
        import psycopg  # after gevent's patching: this module may load before Locust

        if self.scope is not None:
            self.end_run()
        self.prepare(users)
        token_scope = RunScope.new(run_id)
        try:
            holder = psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=10, application_name=f"loadgen-lock/{token_scope.application_name[8:]}"
            )
        except psycopg.Error as e:
            raise TargetError(f"cannot connect to {redact_conninfo(self.dsn)}: {first_line(e)}") from None
        try:
            schema, create = self._schema_for_run(holder)
            row = holder.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (_lock_key(schema),)).fetchone()
            if not (row and row[0]):
                raise TargetError(
                    f"schema {schema!r} is in use by another live loadgen run (its advisory lock is held); "
                    "wait for it, or give this run its own with --schema NAME"
                )
            if create:  # after the lock: two first runs do not race to create it
                holder.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'.encode())
        except psycopg.Error as e:
            holder.close()
            raise TargetError(f"cannot prepare schema {self.schema!r}: {first_line(e)}") from None
        except BaseException:
            holder.close()
            raise
        scope = RunScope(token_scope.run_id, token_scope.token, schema=schema)
        self.scope, self._holder = scope, holder
        return scope

    def _schema_for_run(self, conn: Any) -> tuple[str, bool]:
        """(the schema this run works in, whether to create it).

        The asked-for schema if the role may use it, or create it. A role that may not
        create schemas (PostgreSQL 15+ gives none by default) runs where it stands
        (``current_schema()``, usually public) when no ``--schema`` was given; asked for
        one it cannot create, it is refused in one line.
        """
        usable = conn.execute(
            "SELECT has_schema_privilege(oid, 'USAGE') AND has_schema_privilege(oid, 'CREATE') FROM pg_namespace WHERE nspname = %s",
            (self.schema,),
        ).fetchone()
        row = conn.execute("SELECT has_database_privilege(current_database(), 'CREATE'), current_schema()").fetchone()
        may_create, current = (bool(row[0]), row[1]) if row else (False, None)
        if usable is not None and usable[0]:
            return self.schema, False
        if usable is None and may_create:
            return self.schema, True
        if not self.schema_given and current:
            return str(current), False
        if usable is not None:  # someone else's schema of that name: nothing can be created in it
            raise TargetError(
                f"schema {self.schema!r} exists but this role may not use it: "
                "GRANT USAGE, CREATE ON SCHEMA to the role, or give the run another with --schema NAME"
            )
        raise TargetError(
            f"schema {self.schema!r} does not exist and this role may not create it: create it first "
            "(CREATE SCHEMA ... AUTHORIZATION the role), or grant CREATE on the database"
        )

    def join_run(self, scope: RunScope) -> None:
        self.scope = scope

    def worker_options(self, workers: int) -> dict[str, Any] | None:
        # The password reaches workers through their environment (PGPASSWORD, LOADGEN_DSN), never a message.
        return {"kind": self.kind, "dsn": without_password(self.dsn), "schema": self.schema}

    def end_run(self, *, keep: bool = False) -> str | None:
        # The tables stay: the DSN's database is the user's. Closing the session frees the lock.
        holder, self._holder, self.scope = self._holder, None, None
        if holder is not None:
            holder.close()
        return None

    def conninfo(self) -> str:
        if self.scope is None:
            return _with_params(self.dsn, options=_search_path(self.dsn, self.schema))
        schema = self.scope.schema or self.schema
        return _with_params(self.dsn, options=_search_path(self.dsn, schema), application_name=self.scope.application_name)

    def describe(self) -> dict[str, Any]:
        schema = self.scope.schema if self.scope is not None and self.scope.schema else self.schema
        return {"kind": self.kind, "dsn": redact_conninfo(self.dsn), "schema": schema}


def _lock_key(schema: str) -> str:
    return f"loadgen schema {schema}"


def _search_path(dsn: str, schema: str) -> str:
    from psycopg.conninfo import conninfo_to_dict  # after gevent's patching: this module may load before Locust

    options = str(conninfo_to_dict(dsn).get("options") or "")
    return f"{options} -c search_path={schema}".strip()


def _with_params(conninfo: str, **params: Any) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo  # after gevent's patching (see redact_conninfo)

    merged = conninfo_to_dict(conninfo)
    merged.update({k: v for k, v in params.items() if v is not None})
    return make_conninfo("", **merged)
