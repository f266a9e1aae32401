"""A run directory, found and read in one place: the data contract's one reader.

A run directory holds ``run.json`` (:class:`~loadgen.results.records.RunRecord`) and
``attempts.parquet`` (loadgen.results.recorder); a sweep directory holds a run directory
per cell and ``sweep.json`` (:class:`~loadgen.results.records.SweepRecord`). Every part
of loadgen outside ``loadgen.results`` (the report, the CLI, the web UI, the CSV export,
a notebook) reads them through here, so each file's ``format`` is checked on every read:
an older one is read, a newer or unknown one refused by name
(:class:`~loadgen.results.records.FormatError`, one line and exit 2 from the CLI).

Reading never writes. A run killed mid-way (SIGKILL, OOM, power loss) left its attempts
in part files and run.json saying it was running; :func:`recover_cut_off` is the explicit
step that compacts them and marks run.json as cut off. ``loadgen report`` takes it and
says so; every other reader refuses such a run with the command that recovers it.
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from loadgen.errors import LoadgenError
from loadgen.results.recorder import ATTEMPTS_FILE, attempts_format, write_attempts
from loadgen.results.records import RUN_FILE, SWEEP_FILE, RecordError, RunRecord, SweepRecord
from loadgen.results.sections import CutOff
from loadgen.results.stream import PARTS_DIR, is_writing, live_row_groups, recover

__all__ = [
    "ATTEMPTS_FILE",
    "RUN_FILE",
    "SWEEP_FILE",
    "RunDirError",
    "Recovered",
    "find_run_dirs",
    "attempts_file",
    "run_file",
    "has_attempts",
    "has_sweep",
    "read_run",
    "read_sweep",
    "read_attempts",
    "attempts_schema",
    "recover_cut_off",
    "attempts_so_far",
]

#: Columns without which attempts.parquet is not the data contract's (the report's minimum).
REQUIRED_COLUMNS = ("txn_id", "attempt", "started_at", "latency_ms", "outcome")


class RunDirError(LoadgenError):
    """A path is not a run or sweep directory, or its files cannot be read."""


@dataclass(frozen=True)
class Recovered:
    """A run :func:`recover_cut_off` found cut off and compacted."""

    run_dir: Path
    cut_off: CutOff

    def describe(self) -> str:
        """One line for the terminal."""
        return (
            f"{self.run_dir}: cut off (killed before it finished); recovered {self.cut_off.attempts_on_disk or 0:,} attempts "
            f"(the last reached disk at {self.cut_off.last_write}) into {ATTEMPTS_FILE}, run.json marked cut off"
        )


def attempts_file(run_dir: Path) -> Path | None:
    """``run_dir``'s attempts.parquet, if it is there (for serving the file as it is)."""
    return run_dir / ATTEMPTS_FILE if has_attempts(run_dir) else None


def run_file(run_dir: Path) -> Path | None:
    """``run_dir``'s run.json, if it is there (for serving the file as it is)."""
    return run_dir / RUN_FILE if RunRecord.exists(run_dir) else None


def has_attempts(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a finished (or recovered) attempts.parquet."""
    return (run_dir / ATTEMPTS_FILE).is_file()


def has_sweep(path: Path) -> bool:
    """Whether ``path`` is a sweep directory (it has a sweep.json)."""
    return SweepRecord.exists(path)


def _cut_off(run_dir: Path) -> bool:
    """A run killed mid-way: parts on disk, no attempts.parquet, and nobody writing them."""
    return (run_dir / PARTS_DIR).is_dir() and not has_attempts(run_dir)


def find_run_dirs(path: Path) -> tuple[list[Path], bool]:
    """The run directories ``path`` names (a run, a sweep, or a run's own file), and whether it is a sweep.

    A run still being written, or one cut off and not yet recovered (:func:`recover_cut_off`),
    is refused by name: reading it as it stands would give figures for part of a run.
    """
    path = Path(path)
    if path.is_file() and path.name in (ATTEMPTS_FILE, RUN_FILE):
        path = path.parent
    if not path.exists():
        raise RunDirError(f"no such run or sweep directory: {path}")
    if not path.is_dir():
        raise RunDirError(f"not a run or sweep directory: {path}")
    candidates = [path] if has_attempts(path) or _cut_off(path) else sorted(p for p in path.iterdir() if p.is_dir())
    for run_dir in candidates:
        if _cut_off(run_dir):
            if is_writing(run_dir):
                raise RunDirError(f"{run_dir} is a run still going: read it when it ends")
            raise RunDirError(f"{run_dir} was cut off (killed before it finished): `loadgen report {path}` recovers it first")
    if has_attempts(path):
        return [path], False
    cells = [p for p in candidates if has_attempts(p)]
    if not cells:
        raise RunDirError(f"not a run or sweep directory (no {ATTEMPTS_FILE} in it or its sub-directories): {path}")
    return cells, True


def read_run(run_dir: Path) -> RunRecord | None:
    """``run_dir``'s run.json, its format checked; None if there is none (attempts only)."""
    if not RunRecord.exists(run_dir):
        return None
    try:
        return RunRecord.read(run_dir)
    except RecordError as e:
        raise RunDirError(str(e)) from None


def read_sweep(sweep_dir: Path) -> SweepRecord | None:
    """``sweep_dir``'s sweep.json, its format checked; None if there is none."""
    if not has_sweep(sweep_dir):
        return None
    try:
        return SweepRecord.read(sweep_dir)
    except RecordError as e:
        raise RunDirError(str(e)) from None


def attempts_schema(run_dir: Path) -> pa.Schema:
    """attempts.parquet's columns, its format checked, without reading a row."""
    path = run_dir / ATTEMPTS_FILE
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as e:
        raise RunDirError(f"cannot read {path}: {e}") from None
    attempts_format(path, schema)
    return schema


def read_attempts(run_dir: Path, columns: list[str] | None = None) -> pa.Table:
    """``run_dir``'s attempts (``columns`` only, if given; one missing from an older file is left
    out, unless the data contract requires it), its format checked."""
    path = run_dir / ATTEMPTS_FILE
    if columns is not None:
        present = set(attempts_schema(run_dir).names)
        missing = [c for c in columns if c not in present and c in REQUIRED_COLUMNS]
        if missing:
            raise RunDirError(f"{path}: missing column(s) {', '.join(missing)}")
        columns = [c for c in columns if c in present]
    try:
        # One file: ParquetFile reads it without pq.read_table's dataset layer (pyarrow.dataset, 20 ms to import).
        with pq.ParquetFile(path) as f:
            attempts_format(path, f.schema_arrow)
            return f.read(columns=columns)
    except (OSError, pa.ArrowException) as e:
        raise RunDirError(f"cannot read {path}: {e}") from None


def recover_cut_off(path: Path) -> list[Recovered]:
    """Recover every run under ``path`` (a run or a sweep) that was cut off: compact its parts into
    attempts.parquet and mark its run.json as cut off (loadgen.results.stream.recover). Runs still
    being written are left alone. This writes; call it on purpose, as ``loadgen report`` does."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        return []
    found = []
    for run_dir in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
        if _cut_off(run_dir) and not is_writing(run_dir):
            read_run(run_dir)  # a run.json this loadgen cannot read is refused, not overwritten
            cut = recover(run_dir)
            if cut is not None:
                found.append(Recovered(run_dir, cut))
    return found


@contextlib.contextmanager
def attempts_so_far(run_dir: Path | None, in_memory: Callable[[], pa.Table]) -> Iterator[Path]:
    """A running test's attempts (those in ``run_dir``'s parts, then ``in_memory()``) as one
    attempts.parquet in a temporary directory, removed on exit.

    The parts are listed before the rows in memory are copied, so an attempt is never
    counted twice; one being written at that moment is not counted yet. Written a row group
    at a time (loadgen.results.recorder.write_attempts): memory holds a row group, not the
    hours of attempts a long run has put on disk.
    """
    with tempfile.TemporaryDirectory(prefix="loadgen-so-far-") as tmp:
        path = Path(tmp) / ATTEMPTS_FILE
        for tries_left in reversed(range(5)):
            on_disk = live_row_groups(run_dir) if run_dir is not None else lambda: iter(())
            try:
                write_attempts(itertools.chain(on_disk(), [in_memory()]), path)
                break
            except FileNotFoundError:  # parts merged into a segment meanwhile: list them again
                if not tries_left:
                    raise RunDirError(f"{run_dir}: the attempts kept moving while being read; try again") from None
        yield path
