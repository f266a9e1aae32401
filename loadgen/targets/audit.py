"""The statement audit of a ``--dialect dsql`` run: every connection's traffic traced, then checked.

psycopg has no statement hook, and a Cursor wrapper would miss what psycopg sends by
itself (``BEGIN``, ``COMMIT``, ``SAVEPOINT``). So each connection gets libpq's protocol
trace (``PQtrace``), started right after authentication (no password is traced): every
message the client sends and every reply, in order, one file per connection. After the
run the traces are read back (loadgen.targets.libpq_trace) and checked against DSQL's
rules (loadgen.targets.dsql_rules), transaction-level ones included, as DSQL would
apply them.

:class:`StatementAudit` is what the Audit Protocol of loadgen.targets.base describes,
and :class:`AuditReport` its AuditFindings: a target holds an audit without importing
this module.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq

from loadgen.targets import dsql_rules
from loadgen.targets.libpq_trace import transactions

__all__ = ["Violation", "AuditReport", "StatementAudit", "check_trace"]


@dataclass(frozen=True)
class Violation:
    """One rule broken: the rule, the statement(s) that broke it, and the connection's trace."""

    rule: str
    statement: str
    connection: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class AuditReport:
    """What an audit found (the AuditFindings of loadgen.targets.base)."""

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


def check_trace(text: str, connection: str = "?") -> AuditReport:
    """Check one connection's libpq trace against DSQL's rules."""
    report = AuditReport()
    for txn in transactions(text):
        sent = [stmt for query in txn.queries if query != dsql_rules.REFUSED_MARKER for stmt in dsql_rules.split_statements(query)]
        report.statements += len(sent)
        for stmt in sent:
            for rule in dsql_rules.check_statement(stmt):
                report.violations.append(Violation(rule, dsql_rules.shorten(stmt), connection))
        work = [s for s in sent if not dsql_rules.is_transaction_control(s)]
        if work:
            report.transactions += 1
            report.max_rows_written = max(report.max_rows_written, txn.rows_written)
            for rule, shown in dsql_rules.transaction_rules_broken(work, txn.rows_written):
                report.violations.append(Violation(rule, shown, connection))
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

    def attach(self, conn: psycopg.Connection[Any]) -> None:
        """Trace ``conn`` from now on (call it right after connecting: authentication is over)."""
        path = self.directory / f"conn-{next(self._numbers)}.trace"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        conn.pgconn.trace(fd)
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        self._trace_fds[id(conn)] = fd
        self.connections += 1

    def detach(self, conn: psycopg.Connection[Any]) -> None:
        """Stop tracing ``conn`` (before it closes)."""
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
