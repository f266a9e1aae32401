"""Which runs are live on the embedded server: one locked file per run under ``$LOADGEN_HOME/runs``.

A run holds an exclusive ``flock`` on its file for as long as its process lives, so
the kernel releases it when the process ends in any way (SIGKILL and OOM included):
a file nobody holds locked is a run that is gone, and whoever finds it removes it.
The file is written and locked under a temporary name, then renamed into place, so
no reader ever sees an unlocked file of a live run.

``server_lock`` serialises what changes the server for everyone (first start,
resize, stop, registering a run), so two first starts cannot race.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["LiveRun", "RunLock", "LiveRuns", "server_lock"]


@dataclass(frozen=True)
class LiveRun:
    """What a live run tells the others about itself."""

    name: str  #: the run's unique name on this server (run id plus a token)
    run_id: str
    pid: int
    users: int
    database: str
    #: The run restarts the server (fault injection): nobody may share it meanwhile.
    exclusive: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RunLock:
    """A registered run's lock file, held until :meth:`release` or the process ends."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is None:
            return
        # Unlink first, then unlock: an unlocked file never looks like a stale run to remove twice.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


class LiveRuns:
    """The registry of live runs in one state directory."""

    def __init__(self, home: Path) -> None:
        self.dir = home / "runs"

    def register(self, run: LiveRun) -> RunLock:
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self.dir / f"{run.name}.lock"
        tmp = self.dir / f".{run.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, json.dumps(run.to_dict()).encode())
            os.replace(tmp, final)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return RunLock(final, fd)

    def live(self) -> list[LiveRun]:
        """The runs whose process still holds its lock; files of runs that are gone are removed."""
        if not self.dir.is_dir():
            return []
        found: list[LiveRun] = []
        for path in sorted(self.dir.glob("*.lock")):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # released meanwhile
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    data = os.read(fd, 1 << 16)
                    with contextlib.suppress(ValueError, TypeError):
                        found.append(LiveRun(**json.loads(data)))
                    continue
                # We got the lock: its run is gone without releasing it (killed).
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            finally:
                os.close(fd)
        return found


#: Server locks this process holds, by path, with their depth: flock on a second
#: descriptor of the same file would wait for ourselves.
_held: dict[Path, int] = {}


@contextlib.contextmanager
def server_lock(home: Path) -> Iterator[None]:
    """Hold the state directory's server lock (blocking, re-entrant): one process changes the server at a time."""
    home.mkdir(parents=True, exist_ok=True)
    path = (home / "server.lock").resolve()
    if path in _held:
        _held[path] += 1
        try:
            yield
        finally:
            _held[path] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _held[path] = 1
        yield
    finally:
        _held.pop(path, None)
        os.close(fd)
