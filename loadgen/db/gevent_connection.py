"""A psycopg connection that waits on its socket the gevent way: one libev watcher per round trip.

Under gevent, psycopg picks ``waiting.wait_poll`` over gevent's patched ``select.poll``:
every round trip builds a poll object, a watcher table and a ``Timeout``, and wakes
up every 0.1 s to look again. A transfer makes five round trips (BEGIN, debit,
credit, ledger row, COMMIT), so that was most of loadgen's own CPU per attempt.
Here a round trip costs starting one io watcher (kept per connection) and one ``Waiter``; the
event mask the loop reports goes straight back to psycopg's generator.

It overrides ``Connection.wait``, psycopg's documented hook for consuming its
generators; connecting still goes through psycopg's own wait. Without gevent's
hub (no monkey-patching) the class is not used.
"""

from __future__ import annotations

from typing import Any

import psycopg
from gevent.hub import Waiter, get_hub
from gevent.timeout import Timeout
from psycopg import errors as e
from psycopg.abc import RV, PQGen
from psycopg.pq import ExecStatus
from psycopg.pq.abc import PGresult
from psycopg.waiting import Ready, Wait

__all__ = ["GeventConnection", "wait_gevent", "park"]

# libev's EV_READ and EV_WRITE.
_EV_READ, _EV_WRITE = 1, 2
_EVENTS = {Wait.R: _EV_READ, Wait.W: _EV_WRITE, Wait.RW: _EV_READ | _EV_WRITE}
FATAL_ERROR = ExecStatus.FATAL_ERROR
PIPELINE_SYNC = ExecStatus.PIPELINE_SYNC
PIPELINE_ABORTED = ExecStatus.PIPELINE_ABORTED
_READY = {_EV_READ: Ready.R, _EV_WRITE: Ready.W, _EV_READ | _EV_WRITE: Ready.RW}


def wait_gevent(gen: PQGen[RV], fileno: int, timeout: float | None = None, watchers: dict[int, Any] | None = None) -> RV:
    """Drive ``gen`` to completion, parking the greenlet on the socket between steps.

    ``watchers`` (events -> io watcher on ``fileno``) may be kept by the caller from
    one call to the next: creating a watcher costs a system call (gevent checks the fd).
    """
    hub = get_hub()
    if watchers is None:
        watchers = {}
    # psycopg's callers of ``Connection.wait`` catch its _WaitTimeout (a private name:
    # tests/test_private_api.py fails if it goes, and pyproject.toml bounds psycopg).
    timer = None if timeout is None else Timeout.start_new(timeout, e._WaitTimeout("wait timeout expired"))
    try:
        s = next(gen)
        while True:
            events = _EVENTS[s]
            watcher = watchers.get(events)
            if watcher is None:
                watcher = watchers[events] = hub.loop.io(fileno, events)
            waiter = Waiter(hub)
            # pass_events: the callback gets the ready mask first, which the waiter returns.
            watcher.start(waiter.switch, pass_events=True)
            try:
                ready_mask = waiter.get()
            finally:
                watcher.stop()
            ready = _READY.get(ready_mask & (_EV_READ | _EV_WRITE))
            if ready is None:  # an error condition on the socket: let libpq find out
                ready = Ready.RW
            s = gen.send(ready)
    except StopIteration as ex:
        rv: RV = ex.value
        return rv
    finally:
        if timer is not None:
            timer.close()


def park(watchers: dict[int, Any], fileno: int, events: int) -> int:
    """Park this greenlet until ``fileno`` is ready for ``events`` (libev mask); return the ready mask."""
    watcher = watchers.get(events)
    hub = get_hub()
    if watcher is None:
        watcher = watchers[events] = hub.loop.io(fileno, events)
    waiter = Waiter(hub)
    watcher.start(waiter.switch, pass_events=True)
    try:
        mask: int = waiter.get()
        return mask
    finally:
        watcher.stop()


class GeventConnection(psycopg.Connection[Any]):
    """``psycopg.Connection`` whose queries wait through gevent's loop directly."""

    #: (socket fd, {events: io watcher}): kept for the connection's life, its socket does not change.
    _lg_watchers: tuple[int, dict[int, Any]] | None = None
    #: The connection's BEGIN once loadgen.db.prepared has prepared its statements here.
    _lg_begin: bytes | None = None
    #: Whether loadgen.db.occ has prepared its statements here.
    _lg_occ_prepared: bool = False

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        fileno = self.pgconn.socket
        cached = self._lg_watchers
        if cached is None or cached[0] != fileno:
            cached = self._lg_watchers = (fileno, {})
        try:
            return wait_gevent(gen, fileno, timeout, cached[1])
        except (KeyboardInterrupt, SystemExit):
            # Interrupted mid-query: the connection's state is unknown; do not reuse it.
            self.pgconn.finish()
            raise

    def exchange(self) -> PGresult:
        """Finish the query just sent on ``pgconn``: flush it, wait, read every result, return the last.

        The fast path of loadgen.db.prepared: one libpq call per step, no generator,
        no cursor. Raises psycopg's own error for a failed statement (SerializationFailure
        for 40001, ...) and OperationalError when the connection breaks. Interrupted
        mid-query (a killed greenlet), the connection is closed: its state is unknown.
        """
        pg = self.pgconn
        fileno, watchers, hub, reader = self._watch()
        result = None
        try:
            while pg.flush():  # nonblocking libpq: 1 while some of the query is still unsent
                if park(watchers, fileno, _EV_READ | _EV_WRITE) & _EV_READ:
                    pg.consume_input()
            while True:
                # Park first: the answer is hardly ever there yet, and reading now would
                # cost a recvfrom that fails with EAGAIN (strace: 3 of them per transfer).
                # hub.wait is gevent's compiled park (callgrind: 2.6% fewer instructions per transfer).
                hub.wait(reader)
                pg.consume_input()
                while not pg.is_busy():
                    got = pg.get_result()
                    if got is None:
                        if result is None:
                            raise e.InterfaceError("the server sent no result")
                        if result.status == FATAL_ERROR:
                            raise e.error_from_result(result, encoding=self.info.encoding)
                        return result
                    if result is None or result.status != FATAL_ERROR:
                        result = got  # the first error wins, else the last result
        except BaseException as ex:
            if not isinstance(ex, Exception):
                pg.finish()
            raise

    def _watch(self) -> tuple[int, dict[int, Any], Any, Any]:
        """The socket's watchers, kept while the socket stays the same: (fileno, watchers by event, hub, reader)."""
        fileno = self.pgconn.socket
        cached = self._lg_watchers
        if cached is None or cached[0] != fileno:
            cached = self._lg_watchers = (fileno, {})
        watchers = cached[1]
        hub = get_hub()
        reader = watchers.get(_EV_READ)
        if reader is None:
            reader = watchers[_EV_READ] = hub.loop.io(fileno, _EV_READ)
        return fileno, watchers, hub, reader

    def delay(self, commit: bool = False) -> None:
        """Before a round trip of loadgen.db.occ: the emulated latency's wait (loadgen.db.delay); none here."""

    def exchange_pipeline(self) -> PGresult | None:
        """Finish a pipeline just sent and synced on ``pgconn`` (libpq pipeline mode): one round trip.

        Reads every query's results up to the sync point, then leaves pipeline mode.
        Raises the first failed query's error (the later ones were skipped: aborted);
        returns the last result otherwise.
        """
        pg = self.pgconn
        fileno, watchers, hub, reader = self._watch()
        failed = last = None
        try:
            while pg.flush():
                if park(watchers, fileno, _EV_READ | _EV_WRITE) & _EV_READ:
                    pg.consume_input()
            while True:
                hub.wait(reader)
                pg.consume_input()
                while not pg.is_busy():
                    got = pg.get_result()
                    if got is None:  # the end of one query's results; the next query's follow
                        continue
                    status = got.status
                    if status == PIPELINE_SYNC:
                        pg.exit_pipeline_mode()
                        if failed is not None:
                            raise e.error_from_result(failed, encoding=self.info.encoding)
                        return last
                    if status == FATAL_ERROR:
                        failed = failed or got
                    elif status != PIPELINE_ABORTED:
                        last = got
        except BaseException as ex:
            if not isinstance(ex, Exception):
                pg.finish()
            raise

    def close(self) -> None:
        cached, self._lg_watchers = self._lg_watchers, None
        if cached is not None:
            for watcher in cached[1].values():
                watcher.close()
        super().close()
