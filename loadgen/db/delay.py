"""Emulated latency on a connection: each round trip waits first, client-side, cooperatively.

``with_latency`` makes a subclass of a psycopg connection class that sleeps before
every round trip (BEGIN, each statement, COMMIT, ROLLBACK) and, if asked, once more
before COMMIT. psycopg runs every command through ``Connection.wait`` (connecting does
not come here), so that is the one place to hook: one command is one round trip,
except a transaction's first, which carries BEGIN before it (two), and a COMMIT or
ROLLBACK outside a transaction, which sends nothing (none).

The sleep is gevent's: cooperative, so a thousand users wait at once, and never
shorter than asked (gevent refreshes the loop's clock before arming the timer).
Sleeping before the request rather than after the answer puts the delay where a
network does for the conflict window: from the snapshot (the first statement
reaching the server) to COMMIT reaching it lie the later round trips' delays in
full. With no latency asked for, nothing here is on the path: the class is returned
as it was given. cc occ's transactions (loadgen.db.occ) drive libpq directly and call
``delay`` before sending each round trip, ``delay(commit=True)`` before the COMMIT
pipeline. ``commit_ms`` is added to COMMIT only, as DSQL's commit time; a ROLLBACK
takes none.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import gevent
import psycopg
from psycopg.abc import RV, PQGen
from psycopg.pq import TransactionStatus

from loadgen.model.latency import Latency

__all__ = ["with_latency"]

IDLE = TransactionStatus.IDLE


def with_latency(cls: type[psycopg.Connection[Any]], latency: Latency, seed: int | None = None) -> type[psycopg.Connection[Any]]:
    """A subclass of ``cls`` whose round trips each take ``latency`` longer; ``cls`` itself when there is none."""
    if not latency.active:
        return cls
    rng = random.Random(seed)
    draw = latency.round_trip_s
    commit_s = latency.commit_ms / 1000.0
    sleep = gevent.sleep

    class LatencyConnection(cls):  # type: ignore[valid-type, misc]
        _lg_quiet = False  # set while a COMMIT or ROLLBACK that sends nothing runs
        _lg_delayed = False  # ``delay`` has waited for the round trip ``exchange`` finishes

        def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
            if not self._lg_quiet:
                delay = draw(rng)
                if self.pgconn.transaction_status == IDLE and not self.autocommit:
                    # psycopg sends BEGIN inside a transaction's first command: two round trips.
                    delay += draw(rng)
                sleep(delay)
            return super().wait(gen, interval, timeout)

        def delay(self, commit: bool = False) -> None:
            # loadgen.db.occ calls this before sending each round trip: the delay comes
            # before the server has the request, as in ``wait``; its exchange then adds none.
            self._lg_delayed = True
            sleep((draw(rng) + commit_s) if commit else draw(rng))

        def exchange(self) -> Any:
            # loadgen.db.prepared's fast path (a GeventConnection's): one round trip per call,
            # the query already sent, so the delay comes after the server had it; the
            # window from snapshot to COMMIT grows the same. (SharedUserState takes psycopg's path
            # when latency is emulated; this only keeps any other caller honest.)
            if self._lg_delayed:
                self._lg_delayed = False
            else:
                sleep(draw(rng))
            return super().exchange()

        def exchange_pipeline(self) -> Any:
            if self._lg_delayed:
                self._lg_delayed = False
            else:
                sleep(draw(rng))
            return super().exchange_pipeline()

        def commit(self) -> None:
            if self.pgconn.transaction_status == IDLE:
                self._quietly(super().commit)
                return
            if commit_s:
                sleep(commit_s)
            super().commit()

        def rollback(self) -> None:
            # No extra time here: COMMIT's extra stands for DSQL's commit, and a rollback is none.
            if self.pgconn.transaction_status == IDLE:
                self._quietly(super().rollback)
                return
            super().rollback()

        def _quietly(self, end: Callable[[], None]) -> None:
            # No transaction open: psycopg sends nothing, so no round trip to lengthen.
            self._lg_quiet = True
            try:
                end()
            finally:
                self._lg_quiet = False

    LatencyConnection.__name__ = LatencyConnection.__qualname__ = f"Latency{cls.__name__}"
    LatencyConnection.__doc__ = (
        f"{cls.__name__}, each round trip {latency.rtt_ms:g} ms longer (+ jitter), COMMIT {latency.commit_ms:g} ms more."
    )
    return LatencyConnection
