"""One money transfer, and the retry loop around the whole transaction.

Plain Python over psycopg, testable without Locust. The loop follows the DSQL
team's advice: a fresh connection for every try, the connection always given back,
bind parameters only, an idempotent transaction keyed by the transfer's id, retries
counted as telemetry.
"""

from __future__ import annotations

import itertools
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from loadgen.db.classify import Classified, InsufficientFunds, NoSuchAccount, classify
from loadgen.model import steps
from loadgen.model.attempt import ATTEMPT_FIELDS, AttemptRow
from loadgen.model.outcomes import COMMITTED, RETRYABLE, Outcome
from loadgen.model.retry import RetryPolicy

__all__ = [
    "TransferRequest",
    "TxnResult",
    "AttemptRow",
    "AttemptProgress",
    "run_transfer",
    "transfer_once",
    "ATTEMPT_FIELDS",
    "new_txn_id",
]

DEBIT = "UPDATE accounts SET balance = balance - %s WHERE id = %s RETURNING balance"
CREDIT = "UPDATE accounts SET balance = balance + %s WHERE id = %s"
LEDGER = "INSERT INTO transfers (id, payer, payee, amount) VALUES (%s, %s, %s, %s)"
LOOKUP = "SELECT 1 FROM transfers WHERE id = %s"


class _TxnIds:
    """Transfer ids: a random UUID's first 64 bits per process, then a counter in the last 48.

    Valid, unique UUIDs (version 4 and variant bits kept) at a tenth of ``uuid4``'s cost:
    no ``getrandom`` system call per transfer. A forked child draws a prefix of its own.
    """

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = str(uuid.uuid4())[:24]  # "xxxxxxxx-xxxx-4xxx-yxxx-"
        self.counter = itertools.count(int.from_bytes(os.urandom(5)))

    def new(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFFFFFF:012x}"


_txn_ids = _TxnIds()
#: A fresh transfer id (a UUID string).
new_txn_id = _txn_ids.new


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """One logical transfer; its id stays the same across retries."""

    txn_id: str
    payer: int
    payee: int
    amount: int

    @classmethod
    def new(cls, payer: int, payee: int, amount: int) -> TransferRequest:
        return cls(new_txn_id(), payer, payee, amount)


@dataclass(frozen=True, slots=True)
class TxnResult:
    """How a whole transaction ended, retries included."""

    outcome: str
    attempts: int
    latency_ms: float
    sqlstate: str | None


class AttemptProgress:
    """The step of its shape an attempt has reached (loadgen.model.steps): a failure's ``failed_at``.

    The shape sets ``step`` before each round trip; ``commit`` also says that a lost
    connection leaves the outcome unknown.
    """

    __slots__ = ("step",)

    def __init__(self) -> None:
        self.step = steps.CONNECT

    @property
    def in_commit(self) -> bool:
        return self.step == steps.COMMIT


def transfer_once(conn: psycopg.Connection[Any], req: TransferRequest, phase: AttemptProgress | None = None) -> None:
    """The talk's transaction: debit with RETURNING, credit, ledger row, COMMIT.

    Raises InsufficientFunds (after rolling back) if the payer would go negative.
    """
    if phase is None:
        phase = AttemptProgress()
    cur = conn.cursor()  # one cursor for the three statements: about 5% less client CPU than one each
    phase.step = steps.DEBIT  # psycopg sends BEGIN with it
    row = cur.execute(DEBIT, (req.amount, req.payer)).fetchone()
    if row is None:
        conn.rollback()
        raise NoSuchAccount(f"account {req.payer} does not exist")
    if row[0] < 0:
        conn.rollback()
        raise InsufficientFunds(f"account {req.payer} would go to {row[0]}")
    phase.step = steps.CREDIT
    if cur.execute(CREDIT, (req.amount, req.payee)).rowcount != 1:
        conn.rollback()
        raise NoSuchAccount(f"account {req.payee} does not exist")
    phase.step = steps.LEDGER
    cur.execute(LEDGER, (req.txn_id, req.payer, req.payee, req.amount))
    phase.step = steps.COMMIT
    conn.commit()


def _already_committed(conn: psycopg.Connection[Any], req: TransferRequest) -> bool:
    found = conn.execute(LOOKUP, (req.txn_id,)).fetchone() is not None
    conn.rollback()
    return found


def run_transfer(
    req: TransferRequest,
    getconn: Callable[[], psycopg.Connection[Any]],
    putconn: Callable[[psycopg.Connection[Any]], None],
    policy: RetryPolicy,
    rng: random.Random,
    on_attempt: Callable[[AttemptRow], None],
    transaction: Callable[[psycopg.Connection[Any], TransferRequest, AttemptProgress], None] = transfer_once,
    sleep: Callable[[float], None] = time.sleep,
) -> TxnResult:
    """Try ``req`` until it commits, fails for good, or the policy gives up.

    ``transaction`` is the attempt's function (one of loadgen.db.shapes).
    Every attempt, whatever its end, goes to ``on_attempt`` exactly once.
    """
    perf = time.perf_counter
    txn_start = perf()
    deadline = txn_start + policy.deadline_s
    backoff_ms = 0.0
    commit_unknown = False  # an earlier try lost its connection inside COMMIT
    attempt = 0
    result = Classified(Outcome.ERROR, None)
    while True:
        attempt += 1
        t_ask = perf()
        t0 = 0.0  # when the connection was in hand: the database time starts there
        phase = AttemptProgress()
        conn = None
        try:
            conn = getconn()
            t0 = perf()
            started_at = time.time()
            phase.step = steps.BEGIN
            if commit_unknown and _already_committed(conn, req):
                result = Classified(Outcome.AMBIGUOUS_COMMITTED, None)
            else:
                transaction(conn, req, phase)
                result = _COMMITTED
        except BaseException as exc:  # noqa: BLE001 - GreenletExit too: record, then re-raise
            if not t0:  # no connection came: all of it was waiting for one
                t0 = perf()
                started_at = time.time()
            result = classify(exc)
            if conn is not None:
                _rollback_quietly(conn)
            if not isinstance(exc, Exception):
                on_attempt(
                    _row(
                        req,
                        attempt,
                        started_at,
                        (perf() - t0) * 1000.0,
                        Classified(Outcome.INTERRUPTED, None),
                        backoff_ms,
                        phase.in_commit or commit_unknown,
                        (t0 - t_ask) * 1000.0,
                        phase.step,
                    )
                )
                raise
        finally:
            if conn is not None:
                putconn(conn)
        latency_ms = (perf() - t0) * 1000.0
        unknown = result.outcome == Outcome.CONNECTION_ERROR and (phase.in_commit or commit_unknown)
        failed_at = None if result.outcome in COMMITTED else phase.step
        on_attempt(_row(req, attempt, started_at, latency_ms, result, backoff_ms, unknown, (t0 - t_ask) * 1000.0, failed_at))
        commit_unknown = unknown
        if result.outcome not in RETRYABLE:
            break
        if attempt >= policy.max_attempts or perf() >= deadline:
            break
        backoff_ms = policy.delay_ms(attempt, rng)
        if result.outcome == Outcome.CONNECTION_ERROR:
            # A lost server should not be hammered in a tight loop.
            backoff_ms = max(backoff_ms, min(1000.0, 10.0 * 2 ** min(attempt, 7)))
        if backoff_ms > 0:
            sleep(backoff_ms / 1000.0)
    return TxnResult(result.outcome, attempt, (perf() - txn_start) * 1000.0, result.sqlstate)


#: Built once: a frozen dataclass costs about a microsecond to make, and most attempts commit.
_COMMITTED = Classified(Outcome.COMMITTED, None)


def _rollback_quietly(conn: psycopg.Connection[Any]) -> None:
    # End the failed transaction here, so the connection goes back clean; a broken
    # connection is the pool's to discard.
    if not conn.closed:
        try:
            conn.rollback()
        except psycopg.Error:
            pass


def _row(
    req: TransferRequest,
    attempt: int,
    started_at: float,
    latency_ms: float,
    c: Classified,
    backoff_ms: float,
    commit_unknown: bool,
    conn_wait_ms: float,
    failed_at: str | None,
) -> AttemptRow:
    # In loadgen.model.attempt.Attempt's field order.
    return (
        req.txn_id,
        attempt,
        started_at,
        latency_ms,
        c.outcome,
        c.sqlstate,
        c.oc_code,
        req.payer,
        req.payee,
        req.amount,
        backoff_ms,
        commit_unknown,
        conn_wait_ms,
        failed_at,
    )
