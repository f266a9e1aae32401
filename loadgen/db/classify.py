"""Classify a failed attempt at the source, from the exception psycopg raised.

SQLSTATE first. DSQL reports an OCC conflict as SQLSTATE 40001 with its OCC code
(OC000 data conflict, OC001 schema changed) in the message; the code is kept as a
detail. DSQL may also send the OCC code itself as the SQLSTATE (AWS's connectors
retry SQLSTATE OC000/OC001 as well as 40001): those are conflicts too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
import psycopg.errors as pg_errors

from loadgen.model.outcomes import Outcome

__all__ = ["Classified", "classify", "connect_sqlstate", "InsufficientFunds", "NoSuchAccount", "OCC_SQLSTATES"]

_OC_CODE = re.compile(r"\b(OC\d{3})\b")
#: DSQL's OCC codes used as SQLSTATEs: data conflict, schema changed.
OCC_SQLSTATES = frozenset({"OC000", "OC001"})

# SQLSTATE classes that mean the connection, not the transaction, is the problem:
# 08 connection exception, 57P01-57P03 admin shutdown / crash / cannot connect now,
# 53300/53400 too many connections / connection rate (DSQL).
_CONNECTION_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "53400"})


#: A refused connection's text and the SQLSTATE the server sent with it. libpq keeps
#: only the text of an error during connection start-up, so it is recovered here, once,
#: where the connection is opened. Texts: DSQL's (its quotas and troubleshooting pages)
#: and PostgreSQL's own.
_CONNECT_REFUSALS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"too many (open )?connections|too many clients|remaining connection slots", re.I), "53300"),
    (re.compile(r"unable to accept connection, rate exceeded|connection rate", re.I), "53400"),
    (re.compile(r"password authentication failed", re.I), "28P01"),
    (
        re.compile(r"IAM authentication failed|authentication failed|access denied|token (has )?expired|not permitted to log in", re.I),
        "28000",
    ),
)


def connect_sqlstate(message: str) -> str | None:
    """The SQLSTATE of a refused connection, from the server's text (None when unknown)."""
    for pattern, code in _CONNECT_REFUSALS:
        if pattern.search(message):
            return code
    return None


class InsufficientFunds(Exception):
    """The payer's balance would go negative: rolled back, never retried."""


class NoSuchAccount(Exception):
    """An UPDATE matched no row: the accounts table is not what loadgen seeded."""


@dataclass(frozen=True, slots=True)
class Classified:
    outcome: str
    sqlstate: str | None
    oc_code: str | None = None


def classify(exc: BaseException) -> Classified:
    """Map an exception raised during an attempt to an attempt outcome."""
    if isinstance(exc, InsufficientFunds):
        return Classified(Outcome.INSUFFICIENT_FUNDS, None)
    if isinstance(exc, NoSuchAccount):
        return Classified(Outcome.ERROR, None)
    if isinstance(exc, psycopg.Error):
        sqlstate = exc.sqlstate
        if isinstance(exc, pg_errors.SerializationFailure) or sqlstate == "40001":
            m = _OC_CODE.search(str(exc))
            return Classified(Outcome.CONFLICT, "40001", m.group(1) if m else None)
        if sqlstate in OCC_SQLSTATES:
            return Classified(Outcome.CONFLICT, sqlstate, sqlstate)
        if isinstance(exc, pg_errors.DeadlockDetected):
            return Classified(Outcome.DEADLOCK, sqlstate)
        if isinstance(exc, pg_errors.LockNotAvailable):
            return Classified(Outcome.LOCK_TIMEOUT, sqlstate)
        if sqlstate is None or sqlstate.startswith("08") or sqlstate in _CONNECTION_SQLSTATES:
            # No SQLSTATE: the server never answered (socket closed, connection lost).
            if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) or sqlstate:
                return Classified(Outcome.CONNECTION_ERROR, sqlstate)
        return Classified(Outcome.ERROR, sqlstate)
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return Classified(Outcome.CONNECTION_ERROR, None)
    return Classified(Outcome.ERROR, None)
