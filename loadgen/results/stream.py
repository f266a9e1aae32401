"""Attempts on their way to disk while the run goes: small Parquet part files, one attempts.parquet at the end.

The per-attempt path is untouched: users append to the recorder's lists
(:mod:`loadgen.results.recorder`) as before. About once a second :meth:`AttemptStream.drain`
swaps those lists for empty ones and writes what it took as one part file
(``attempts.parts/part-000001.parquet``, written to a temporary name and renamed),
so memory stays flat whatever the duration, and a SIGKILL, an OOM or a power loss
costs only what the last second had not flushed yet.

Thousands of one-second parts would make a long run slow to read, so every
:data:`MERGE_EVERY` parts are merged into one segment named by the part numbers it
holds (``seg-000001-000060.parquet``); a reader skips parts a segment covers, so a
crash between writing a segment and deleting its parts never counts a row twice.

At the end :func:`attempts_from_parts` turns the parts into the data contract's single
``attempts.parquet``, row group by row group (memory holds one row group of the
file, loadgen.results.recorder.ROW_GROUP_ROWS attempts, never the run), and removes them; ``loadgen report`` does the same for a run
that was cut off (:func:`recover`). While a stream is open its process holds a lock
on ``attempts.parts/.writing``, so a reader can tell a run still going (leave its
parts alone) from one that was killed (turn them into attempts.parquet).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loadgen.model.outcomes import Outcome
from loadgen.results.outofcore import summarize_files
from loadgen.results.recorder import ATTEMPT_SCHEMA, AttemptRecorder, write_attempts
from loadgen.results.records import RecordError, RunRecord
from loadgen.results.sections import CutOff
from loadgen.results.warnings import run_warnings

__all__ = [
    "AttemptStream",
    "CutOff",
    "PARTS_DIR",
    "MERGE_EVERY",
    "read_parts",
    "row_groups",
    "live_row_groups",
    "attempts_from_parts",
    "settle",
    "has_parts",
    "is_writing",
    "recover",
]

PARTS_DIR = "attempts.parts"
#: One-second parts merged into one segment (a minute at the usual pace).
MERGE_EVERY = 60

_WRITING = ".writing"
_PART = re.compile(r"^part-(\d{6,})\.parquet$")
_SEGMENT = re.compile(r"^seg-(\d{6,})-(\d{6,})\.parquet$")


class AttemptStream:
    """Writes a run's attempts as they come, from one or more recorders (the distributed master: one per worker)."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir / PARTS_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        parts, segments = _listing(self.dir)
        last = max([n for n, _ in parts] + [hi for _, hi, _ in segments], default=0)
        self._next = last + 1
        self._unmerged = [n for n, _ in parts if not _covered(n, segments)]
        #: Rows written so far (this process).
        self.rows = 0
        # Held while this process writes: readers leave the parts of a live run alone.
        self._lock_fd: int | None = os.open(self.dir / _WRITING, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def close(self) -> None:
        """Stop writing (the parts stay until :func:`attempts_from_parts`)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def take(self, *recorders: AttemptRecorder) -> list[AttemptRecorder]:
        """Take every row the recorders hold now (cheap: swaps their lists); write them with :meth:`write_taken`.

        Swapped, not copied: no greenlet switch can happen between these lines, so a
        user's append lands either in the rows taken or in the fresh list. Call it
        from the thread (greenlet hub) the users record in.
        """
        taken = []
        for rec in recorders:
            rows, users = rec.rows, rec.users
            if not rows:
                continue
            rec.rows, rec.users = [], []
            part = copy.copy(rec)  # same run id, worker, cell...: to_table() labels the rows as rec would
            part.rows, part.users = rows, users
            taken.append(part)
        return taken

    def write_taken(self, taken: list[AttemptRecorder]) -> int:
        """Write what :meth:`take` took as one part; the rows written. Safe in another OS thread
        (nobody else touches the taken rows), which keeps fsync off the users' event loop."""
        if not taken:
            return 0
        tables = [part.to_table() for part in taken]
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        self.write(table)
        return int(table.num_rows)

    def drain(self, *recorders: AttemptRecorder) -> int:
        """:meth:`take` and :meth:`write_taken` in one go (the end of a run, tests)."""
        return self.write_taken(self.take(*recorders))

    def write(self, table: pa.Table) -> None:
        """One part file, atomically; merges a segment's worth of parts when due."""
        if table.num_rows == 0:
            return
        n = self._next
        self._next += 1
        path = self.dir / f"part-{n:06d}.parquet"
        _write_atomically(table, path, compression="lz4")
        if self.rows == 0:
            # Read the first part back: a writer that cannot produce a readable file is found
            # in the run's first second, not at its end; and the Parquet reader's fixed cost
            # (about 10-15 MB of code and buffers, measured) is paid now, not at the first merge.
            with pq.ParquetFile(path) as f:
                whole = f.metadata.num_rows == table.num_rows and f.read().num_rows == table.num_rows
            if not whole:
                raise OSError(f"{path}: the part written does not read back whole")
        self.rows += table.num_rows
        self._unmerged.append(n)
        if len(self._unmerged) >= MERGE_EVERY:
            self._merge()

    def _merge(self) -> None:
        # Part by part into one file of row groups: memory holds one part at a time, not the minute.
        numbers = sorted(self._unmerged)
        lo, hi = numbers[0], numbers[-1]
        paths = [self.dir / f"part-{n:06d}.parquet" for n in numbers]
        target = self.dir / f"seg-{lo:06d}-{hi:06d}.parquet"
        tmp = target.with_name(target.name + ".tmp")
        with pq.ParquetWriter(tmp, pq.read_schema(paths[0]), compression="zstd") as writer:
            for path in paths:
                with pq.ParquetFile(path) as f:  # not pq.read_table: its dataset layer is a module more to load
                    writer.write_table(f.read())
        _fsync(tmp)
        os.replace(tmp, target)
        for path in paths:  # a crash here leaves parts the segment covers: readers skip them
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._unmerged = []


def has_parts(run_dir: Path) -> bool:
    return (run_dir / PARTS_DIR).is_dir()


def is_writing(run_dir: Path) -> bool:
    """Whether a live process is still streaming into ``run_dir``."""
    try:
        fd = os.open(run_dir / PARTS_DIR / _WRITING, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def recover(run_dir: Path) -> CutOff | None:
    """Compact the parts of a run that was cut off (killed, OOM, power loss); None if there is nothing to recover.

    run.json (written when the run started) is marked as cut off, when, and with how
    many attempts on disk; a run still being written is left alone. Memory is bounded
    (loadgen.results.outofcore): a killed run may be hours long.
    """
    directory = run_dir / PARTS_DIR
    if not directory.is_dir() or is_writing(run_dir):
        return None
    files = [p for p in directory.iterdir() if _PART.match(p.name) or _SEGMENT.match(p.name)]
    last = max((p.stat().st_mtime for p in files), default=None)
    # Compacted first (a torn part is skipped there), then summarized from the one file a batch at a time.
    summary, _, _ = summarize_files([attempts_from_parts(run_dir)])
    cut = CutOff(datetime.fromtimestamp(last, UTC).isoformat() if last is not None else None, int(summary["attempts"]))
    try:
        record = RunRecord.read(run_dir)  # written when the run started
    except RecordError:
        record = RunRecord(run_id=run_dir.name, scenario={}, target={})
    # The summary of what reached disk; no invariants: nobody checked the bank.
    record.status, record.completed, record.in_progress, record.summary = "cut off", False, False, summary
    record.ended_at = record.ended_at or cut.last_write
    record.extra["cut_off"] = cut.to_dict()
    record.extra["warnings"] = run_warnings(record.to_dict())  # the report's warnings, cut off included
    record.write(run_dir)
    return cut


#: Which rows to read: the columns a test needs, and the test (a boolean mask over them; null is false).
Where = tuple[Sequence[str], Callable[[pa.Table], pa.Array | pa.ChunkedArray]]


def row_groups(run_dir: Path, columns: Sequence[str] | None = None, where: Where | None = None) -> Iterator[pa.Table]:
    """Every attempt that reached disk, in the order written, one row group at a time (``columns`` only, if given).

    A part is one row group, a segment one per part it merged: memory holds about a
    second of attempts at a time. A file that does not read is skipped from there on
    (a part torn by a power loss: renamed, but not on disk whole; that second is lost).
    ``where``: only the rows it selects, and a row group where it selects none is not read
    beyond its test's columns (a rare case found without reading every transfer id).
    """
    return _read_pieces(_pieces(run_dir), columns, vanished_ok=True, where=where)


def live_row_groups(run_dir: Path) -> Callable[[], Iterator[pa.Table]]:
    """A running test's files, listed now, and a reader of their row groups that raises FileNotFoundError
    when one has gone meanwhile (merged into a segment: list again). The listing is fixed first, so
    rows a reader takes from memory afterwards are never counted twice."""
    pieces = _pieces(run_dir)
    return lambda: _read_pieces(pieces, None, vanished_ok=False)


def _read_pieces(
    pieces: Sequence[Path], columns: Sequence[str] | None, vanished_ok: bool, where: Where | None = None
) -> Iterator[pa.Table]:
    wanted = list(columns) if columns is not None else None
    for path in pieces:
        try:
            with pq.ParquetFile(path) as f:
                for i in range(f.num_row_groups):
                    if where is None:
                        yield f.read_row_group(i, columns=wanted)
                        continue
                    mask = pc.fill_null(where[1](f.read_row_group(i, columns=list(where[0]))), False)
                    if pc.any(mask).as_py():
                        yield f.read_row_group(i, columns=wanted).filter(mask)
        except FileNotFoundError:
            if not vanished_ok:
                raise
        except (OSError, pa.ArrowInvalid):
            continue


def read_parts(run_dir: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Every attempt that reached disk, in the order written, as one table (``columns`` only, if given).

    Every column of a long run is large: read only the columns a figure needs, or go
    through :func:`row_groups`.
    """
    tables = list(row_groups(run_dir, columns))
    schema = ATTEMPT_SCHEMA if columns is None else pa.schema([ATTEMPT_SCHEMA.field(c) for c in columns])
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables, promote_options="default")


def attempts_from_parts(run_dir: Path, settled: Mapping[str, int] | None = None) -> Path:
    """Write ``attempts.parquet`` from the parts, row group by row group, then remove the parts.

    ``settled``: attempts whose unknown commit the ledger settled, by transfer id and
    attempt number (loadgen.engine.session.resolve_unknown_commits): written as ``ambiguous_committed``.
    """
    target = run_dir / "attempts.parquet"
    groups = row_groups(run_dir)
    write_attempts((settle(t, settled) for t in groups) if settled else groups, target)
    shutil.rmtree(run_dir / PARTS_DIR, ignore_errors=True)
    return target


def settle(table: pa.Table, settled: Mapping[str, int]) -> pa.Table:
    """``table`` with the attempts ``settled`` names (transfer id -> attempt number) marked ``ambiguous_committed``.

    ``table`` needs ``txn_id``, ``attempt`` and ``outcome``; ``settled`` is small (a few
    lost COMMIT answers), so the rows are found by transfer id first.
    """
    if not settled or table.num_rows == 0:
        return table
    txn_ids = table.column("txn_id")
    candidates = pc.indices_nonzero(pc.is_in(txn_ids, value_set=pa.array(list(settled), pa.string()))).to_pylist()
    if not candidates:
        return table
    attempts = table.column("attempt")
    hit = np.zeros(table.num_rows, dtype=bool)
    for i in candidates:
        hit[i] = settled[txn_ids[i].as_py()] == attempts[i].as_py()
    index = table.schema.get_field_index("outcome")
    outcome = pc.if_else(pa.array(hit), pa.scalar(Outcome.AMBIGUOUS_COMMITTED.value, pa.string()), table.column(index))
    table = table.set_column(index, table.schema.field(index), outcome)
    where = table.schema.get_field_index("failed_at")
    if where >= 0:  # a settled attempt committed: it failed nowhere
        failed_at = pc.if_else(pa.array(hit), pa.scalar(None, pa.string()), table.column(where))
        table = table.set_column(where, table.schema.field(where), failed_at)
    return table


def _pieces(run_dir: Path) -> list[Path]:
    """The files holding the attempts, in the order written: segments, and the parts no segment covers."""
    directory = run_dir / PARTS_DIR
    parts, segments = _listing(directory) if directory.is_dir() else ([], [])
    pieces = [(lo, path) for lo, _, path in segments] + [(n, path) for n, path in parts if not _covered(n, segments)]
    return [path for _, path in sorted(pieces)]


def _write_atomically(table: pa.Table, path: Path, compression: str) -> None:
    # fsync before the rename: after a power loss a part is there whole or not at all.
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression=compression)
    _fsync(tmp)
    os.replace(tmp, path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _listing(directory: Path) -> tuple[list[tuple[int, Path]], list[tuple[int, int, Path]]]:
    parts: list[tuple[int, Path]] = []
    segments: list[tuple[int, int, Path]] = []
    for path in directory.iterdir():
        if m := _PART.match(path.name):
            parts.append((int(m.group(1)), path))
        elif m := _SEGMENT.match(path.name):
            segments.append((int(m.group(1)), int(m.group(2)), path))
    return parts, segments


def _covered(n: int, segments: list[tuple[int, int, Path]]) -> bool:
    return any(lo <= n <= hi for lo, hi, _ in segments)
