"""The DSQL dialect on any PostgreSQL: behave like DSQL where it can, and check every statement sent.

``--dialect dsql`` wraps a target (the embedded PostgreSQL, usually) so that loadgen
takes its DSQL path (no ``SET TRANSACTION``/isolation level, no TRUNCATE, set-up in
single-statement transactions, batches of at most 1,000 rows) and rehearses what a
DSQL cluster would do to it:

- optimistic concurrency: no lock waits (``lock_timeout`` of 1 ms as a startup
  parameter), and a write-write conflict, whichever way PostgreSQL reports it
  (40001, or 55P03 for a lock not granted), reaches loadgen as DSQL's: SQLSTATE
  40001 with ``(OC000)`` in its text;
- refusal: a statement DSQL refuses (the rules below, ``SET``/``set_config`` of a
  setting it does not allow, ``pg_stat_activity``) fails before it is sent, with
  SQLSTATE 0A000, as it would on a cluster;
- afterwards, an audit of what actually went over the wire.

How statements are caught: psycopg has no statement hook, and a Cursor wrapper
would miss what psycopg sends by itself (``BEGIN``, ``COMMIT``, ``SAVEPOINT``). So
each connection gets libpq's protocol trace (``PQtrace``), started right after
authentication (no password is traced): every message the client sends and every
reply, in order. After the run the traces are read back: statements from
``Query``/``Parse``/``Bind``, transaction ends from ``ReadyForQuery`` (status ``I``),
rows written from ``CommandComplete`` tags. Transaction-level rules (one DDL, DDL
alone, <= 3,000 rows) are then checked as DSQL would apply them.

On PostgreSQL the same isolation as DSQL (snapshot = REPEATABLE READ) is set as a
startup parameter, not by a statement, so the transfers still conflict with 40001.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import tempfile
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors as pg_errors
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loadgen.errors import ConfigError
from loadgen.targets.base import DSQL_MAX_ROWS_PER_TRANSACTION, Target
from loadgen.targets.embedded import RUN_DATABASE_PREFIX
from loadgen.targets.scope import RunScope

__all__ = [
    "DIALECTS",
    "DSQL_MAX_ROWS_PER_TRANSACTION",
    "Violation",
    "AuditReport",
    "StatementAudit",
    "DsqlDialectTarget",
    "check_trace",
    "check_statement",
    "refusal",
    "report_dialect_check",
    "DSQL_CONFLICT_MESSAGE",
]

DIALECTS: tuple[str, ...] = ("postgresql", "dsql")

_I = re.IGNORECASE | re.DOTALL
#: Statement-level rules: (rule, pattern that breaks it).
STATEMENT_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "no isolation level but DSQL's own (BEGIN, or BEGIN ISOLATION LEVEL REPEATABLE READ)",
        re.compile(
            r"^\s*(SET\s+(SESSION\s+CHARACTERISTICS|TRANSACTION)"
            r"|(BEGIN|START\s+TRANSACTION)\b.*\bISOLATION\s+LEVEL\s+(?!REPEATABLE\s+READ\b))"
            r"|default_transaction_isolation",
            _I,
        ),
    ),
    ("no TRUNCATE", re.compile(r"^\s*TRUNCATE\b", _I)),
    ("no SAVEPOINT", re.compile(r"^\s*(SAVEPOINT|RELEASE\b|ROLLBACK\s+(WORK\s+|TRANSACTION\s+)?TO\b)", _I)),
    (
        "no temporary tables",
        re.compile(r"^\s*CREATE\s+((GLOBAL|LOCAL)\s+)?(TEMP|TEMPORARY|UNLOGGED)\s+TABLE\b|\bINTO\s+TEMP(ORARY)?\b", _I),
    ),
    ("no extensions", re.compile(r"^\s*CREATE\s+EXTENSION\b", _I)),
    (
        "no SET of a setting DSQL does not allow (e.g. lock_timeout)",
        re.compile(
            r"^\s*(SET|RESET)\s+(SESSION\s+|LOCAL\s+)?(?!(application_name|search_path|time\s*zone|timezone|client_encoding|datestyle|extra_float_digits)\b)\w"
            r"|\bset_config\s*\(\s*'(?!(application_name|search_path|timezone|client_encoding|datestyle|extra_float_digits)')",
            _I,
        ),
    ),
    ("no pg_stat_activity (not known to work on DSQL; AWS's own tests avoid it)", re.compile(r"\bpg_stat_activity\b", _I)),
    ("no LOCK TABLE (DSQL: unsupported statement: Lock)", re.compile(r"^\s*LOCK\b", _I)),
    (
        "no FOR SHARE or FOR NO KEY UPDATE (DSQL locks only FOR UPDATE and FOR KEY SHARE)",
        re.compile(r"\bFOR\s+(NO\s+KEY\s+UPDATE|SHARE)\b", _I),
    ),
)
#: DSQL takes ``SELECT ... FOR UPDATE`` only with an equality predicate on the primary key.
_FOR_UPDATE = re.compile(r"\bFOR\s+UPDATE\b", _I)
_FOR_UPDATE_BY_KEY = re.compile(r"\bWHERE\s+id\s*=\s*(\$\d+|%s|\d+)\s+FOR\s+UPDATE\s*$", _I)
FOR_UPDATE_RULE = "FOR UPDATE only with an equality predicate on the primary key (WHERE id = ...)"
#: The conflict text DSQL sends with SQLSTATE 40001 (its current wording; older clusters said
#: "change conflicts with another transaction, please retry: (OC000)").
DSQL_CONFLICT_MESSAGE = "mutation conflicts with another transaction, retry as needed (OC000)"
#: Sent in place of a refused statement inside a transaction: the server then fails the
#: statement and aborts the transaction itself, as DSQL does (later statements 25P02, COMMIT
#: answers ROLLBACK). The audit skips it: it stands for a statement that was never sent.
REFUSED_MARKER = "DO $$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'refused by the --dialect dsql rehearsal'; END$$"
_DDL = re.compile(r"^\s*(CREATE|ALTER|DROP)\b", re.IGNORECASE)
_TXN_CONTROL = re.compile(r"^\s*(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT)\b", re.IGNORECASE)
_ROWS_TAG = re.compile(r"^(INSERT \d+|UPDATE|DELETE|MERGE|COPY) (\d+)$")

# libpq trace lines: direction, length, message type, then the message's fields.
_MSG = re.compile(r"^([FB])\t\d+\t(\w+)\t?(.*)$", re.DOTALL)
_QUERY = re.compile(r'^ "(.*)"$', re.DOTALL)
_PARSE = re.compile(r'^ "([^"]*)" "(.*)" \d+(?: \S+)*$', re.DOTALL)
_BIND = re.compile(r'^ "([^"]*)" "([^"]*)"')
_TAG = re.compile(r'^ "(.*)"$')


@dataclass(frozen=True)
class Violation:
    rule: str
    statement: str
    connection: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class AuditReport:
    statements: int = 0
    transactions: int = 0
    violations: list[Violation] = field(default_factory=list)
    #: The most rows one transaction wrote.
    max_rows_written: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "statements": self.statements,
            "transactions": self.transactions,
            "max_rows_written": self.max_rows_written,
            "violations": [v.to_dict() for v in self.violations],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditReport:
        return cls(
            int(data["statements"]),
            int(data["transactions"]),
            [Violation(**v) for v in data["violations"]],
            int(data["max_rows_written"]),
        )

    def add(self, other: AuditReport) -> None:
        self.statements += other.statements
        self.transactions += other.transactions
        self.violations.extend(other.violations)
        self.max_rows_written = max(self.max_rows_written, other.max_rows_written)


def check_statement(sql: str) -> list[str]:
    """The statement-level DSQL rules ``sql`` breaks."""
    broken = [rule for rule, pattern in STATEMENT_RULES if pattern.search(sql)]
    if _FOR_UPDATE.search(sql) and not _FOR_UPDATE_BY_KEY.search(sql.strip().rstrip(";")):
        broken.append(FOR_UPDATE_RULE)
    return broken


def refusal(sql: str) -> psycopg.Error | None:
    """The error a DSQL cluster would answer ``sql`` with, or None: one line, SQLSTATE 0A000."""
    broken = [rule for stmt in _split(sql) for rule in check_statement(stmt)]
    if not broken:
        return None
    return pg_errors.lookup("0A000")(f"not supported: DSQL refuses this statement (--dialect dsql rehearsal): {broken[0]}: {_short(sql)}")


def _split(sql: str) -> list[str]:
    # A simple-protocol Query may hold several statements; loadgen's carry no ';' in literals.
    return [s.strip() for s in sql.split(";") if s.strip()]


def _short(sql: str) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= 200 else flat[:197] + "..."


def _messages(text: str) -> list[tuple[str, str, str]]:
    """(direction, type, fields) per message; a field may span lines (SQL with newlines)."""
    out: list[tuple[str, str, str]] = []
    for line in text.split("\n"):
        m = _MSG.match(line)
        if m:
            out.append((m.group(1), m.group(2), m.group(3)))
        elif out and line:
            d, t, f = out[-1]
            out[-1] = (d, t, f + "\n" + line)
    return out


def check_trace(text: str, connection: str = "?") -> AuditReport:
    """Check one connection's libpq trace against DSQL's rules."""
    report = AuditReport()
    prepared: dict[str, str] = {}
    txn: list[str] = []  # statements of the open transaction
    rows = 0

    def executed(sql: str) -> None:
        if sql == REFUSED_MARKER:
            return
        for stmt in _split(sql):
            report.statements += 1
            txn.append(stmt)
            for rule in check_statement(stmt):
                report.violations.append(Violation(rule, _short(stmt), connection))

    def end_transaction() -> None:
        nonlocal rows
        work = [s for s in txn if not _TXN_CONTROL.match(s)]
        if work:
            report.transactions += 1
            report.max_rows_written = max(report.max_rows_written, rows)
            ddl = [s for s in work if _DDL.match(s)]
            if len(ddl) > 1:
                report.violations.append(Violation("one DDL statement per transaction", _short(" ; ".join(ddl)), connection))
            if ddl and len(work) > len(ddl):
                others = [s for s in work if not _DDL.match(s)]
                report.violations.append(Violation("DDL never mixed with other statements", _short(ddl[0] + " ; " + others[0]), connection))
            if rows > DSQL_MAX_ROWS_PER_TRANSACTION:
                report.violations.append(
                    Violation(
                        f"at most {DSQL_MAX_ROWS_PER_TRANSACTION} rows written per transaction ({rows} written)",
                        _short(" ; ".join(work[:3])),
                        connection,
                    )
                )
        txn.clear()
        rows = 0

    for direction, kind, fields in _messages(text):
        if direction == "F":
            if kind == "Query" and (m := _QUERY.match(fields)):
                executed(m.group(1))
            elif kind == "Parse" and (m := _PARSE.match(fields)):
                prepared[m.group(1)] = m.group(2)
            elif kind == "Bind" and (m := _BIND.match(fields)):
                executed(prepared.get(m.group(2), f"<unknown prepared statement {m.group(2)!r}>"))
        else:
            if kind == "CommandComplete" and (m := _TAG.match(fields)):
                r = _ROWS_TAG.match(m.group(1))
                if r:
                    rows += int(r.group(2))
            elif kind == "ReadyForQuery" and fields.strip() == "I":
                end_transaction()
    if txn:
        end_transaction()  # the connection ended inside a transaction: it was rolled back
    return report


class StatementAudit:
    """Traces every connection it is attached to, one file each, and checks them afterwards."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="lg-trace-"))  # mode 0700
        # Removed on cleanup(), or when the audit is dropped (a run that raised).
        self._remove = weakref.finalize(self, shutil.rmtree, self.directory, True)
        self._numbers = itertools.count(1)
        self.connections = 0
        #: Each traced connection's trace file descriptor, by the connection's id.
        self._trace_fds: dict[int, int] = {}
        #: Audits of other processes' connections (scale-out workers), added to this one's.
        self.remote: list[AuditReport] = []
        audit = self

        class TracedConnection(psycopg.Connection[Any]):
            """A psycopg connection whose protocol traffic, after authentication, goes to a trace file.

            Its cursors behave like DSQL's: see :class:`DsqlCursor`.
            """

            @classmethod
            def connect(cls, conninfo: str = "", **kwargs: Any) -> TracedConnection:
                conn = super().connect(conninfo, **kwargs)
                conn.cursor_factory = DsqlCursor
                audit.attach(conn)
                return conn

            def close(self) -> None:
                audit.detach(self)
                super().close()

        self.connection_class: type[psycopg.Connection[Any]] = TracedConnection

    def attach(self, conn: psycopg.Connection[Any]) -> None:
        path = self.directory / f"conn-{next(self._numbers)}.trace"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        conn.pgconn.trace(fd)
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        self._trace_fds[id(conn)] = fd
        self.connections += 1

    def detach(self, conn: psycopg.Connection[Any]) -> None:
        fd = self._trace_fds.pop(id(conn), None)  # popped at close: the id cannot be reused before
        if fd is None:
            return
        # libpq flushes after every message; PQuntrace drops its FILE* without
        # closing it, so close the descriptor here (the FILE* is never used again).
        try:
            conn.pgconn.untrace()
        except psycopg.Error:
            pass
        os.close(fd)

    def check(self) -> AuditReport:
        report = AuditReport()
        for path in sorted(self.directory.glob("conn-*.trace")):
            report.add(check_trace(path.read_text(errors="replace"), path.stem))
        for other in self.remote:
            report.add(other)
        return report

    def add_remote(self, data: dict[str, Any]) -> None:
        """A worker process's audit (``AuditReport.to_dict()`` plus its ``connections``)."""
        self.remote.append(AuditReport.from_dict(data))
        self.connections += int(data.get("connections", 0))

    def cleanup(self) -> None:
        self._remove()


class DsqlCursor(psycopg.Cursor[Any]):
    """A cursor that answers like DSQL: refuses what DSQL refuses, reports conflicts as DSQL does.

    A refused statement inside a transaction (or one it would begin) aborts it, as on
    DSQL: the server is handed :data:`REFUSED_MARKER` in its place and fails it, so later
    statements get 25P02 and COMMIT answers ROLLBACK, from the server itself.
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


#: PostgreSQL's equivalent of DSQL's one isolation level, and no lock waits (DSQL takes
#: no row locks), set at connection start.
_SNAPSHOT_OPTION = r"-c default_transaction_isolation=repeatable\ read -c lock_timeout=1ms"


class DsqlDialectTarget(Target):
    """Any target, driven as if it were DSQL, with every statement audited."""

    sets_isolation = False
    dialect = "dsql"

    def __init__(self, inner: Target) -> None:
        self.inner = inner
        self.kind: str = inner.kind
        # PostgreSQL driven as DSQL still locks rows underneath; loadgen.db.cc keeps it from waiting.
        self.takes_row_locks = inner.takes_row_locks
        self.audit: StatementAudit | None = StatementAudit()
        self.connection_class = self.audit.connection_class
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


def report_dialect_check(target: Target, run_dir: Path) -> bool:
    """After a run: check the audited traffic, write ``dialect-check.json``, print one line; True when clean."""
    audit = target.audit
    if audit is None:
        return True
    try:
        report = audit.check()
    finally:
        audit.cleanup()
    violations = report.to_dict()["violations"]
    doc = {
        "dialect": "dsql",
        "method": "libpq protocol trace of every connection",
        "connections": audit.connections,
        "statements": report.statements,
        "transactions": report.transactions,
        "max_rows_written_per_transaction": report.max_rows_written,
        "violations": violations,
    }
    (run_dir / "dialect-check.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(
        f"dialect dsql: {report.statements} statements in {report.transactions} transactions over "
        f"{audit.connections} connections checked, {len(violations)} breaking DSQL's rules"
    )
    for v in violations[:10]:
        print(f"  {v['rule']}: {v['statement']}")
    return report.ok
