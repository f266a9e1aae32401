"""A run's attempts streamed to its directory every second while it goes (see loadgen.results.stream).

The users keep appending to their recorder's lists; a greenlet swaps those lists out
once a second and hands them to a worker thread, which builds the Parquet part and
fsyncs it. The event loop the users run on never waits for the disk.
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

from collections.abc import Callable, Iterable

import gevent
import gevent.event

from loadgen.results.recorder import AttemptRecorder
from loadgen.results.stream import AttemptStream

__all__ = ["StreamedAttempts", "FLUSH_INTERVAL_S"]

#: How often attempts reach disk: a SIGKILL loses at most about this much (plus one write).
FLUSH_INTERVAL_S = 1.0


class StreamedAttempts:
    """The attempts of one run on their way to ``run_dir`` (attempts.parquet written from them at its end by loadgen.results.stream.attempts_from_parts).

    ``sources`` gives the recorders to drain (one for a run in this process; the
    distributed master's grows as workers join).
    """

    def __init__(
        self,
        stream: AttemptStream,
        sources: Callable[[], Iterable[AttemptRecorder]],
        before_take: Callable[[], None] | None = None,
    ) -> None:
        self.stream = stream
        self.sources = sources
        #: Called just before rows are taken (the progress tally counts them first).
        self.before_take = before_take
        self._stop = gevent.event.Event()
        self._flusher: gevent.Greenlet | None = None

    def start(self) -> None:
        self._flusher = gevent.spawn(self._flush_forever)

    def _flush_forever(self) -> None:
        threads = gevent.get_hub().threadpool
        while not self._stop.wait(FLUSH_INTERVAL_S):
            if self.before_take is not None:
                self.before_take()
            taken = self.stream.take(*self.sources())
            if taken:
                threads.apply(self.stream.write_taken, (taken,))

    def stop(self) -> None:
        """Stop the background writes (waiting for one in progress), then write what is left."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None
        if self.before_take is not None:
            self.before_take()
        self.stream.drain(*self.sources())

    @property
    def rows(self) -> int:
        """Attempts written so far."""
        return self.stream.rows

    def close(self) -> None:
        """Release the stream's lock: only once attempts.parquet is written, so that ``loadgen report``
        never takes a run being finished for one that was killed."""
        self.stream.close()
