"""Loading run directories for a report or a notebook.

A run directory holds ``attempts.parquet`` and ``run.json`` (the data contract
users script against: README.md, "Running", lists their columns and fields). A sweep is any directory whose sub-directories are run directories,
with or without a ``sweep.json`` index. The files are found and read through their one
owner, loadgen.results.rundir (format checked, nothing written). Attempts are loaded column by column
through pyarrow into a compact frame (integer transaction codes, epoch
milliseconds as floats, outcomes as categories) so ten million rows stay a few
hundred megabytes and every later step is vectorized.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loadgen.results import rundir
from loadgen.results.records import RunRecord
from loadgen.results.rundir import RunDirError, find_run_dirs
from loadgen.results.sections import RunSections

__all__ = [
    "ReportInputError",
    "Run",
    "Study",
    "load_run",
    "load_study",
    "find_run_dirs",
    "compact",
    "compact_from_arrow",
    "redact",
]

#: Columns the report needs; everything else stays on disk.
_REPORT_COLUMNS = ("txn_id", "attempt", "started_at", "latency_ms", "outcome", "payer", "payee")

#: A path given to the report is not a run or sweep directory, or cannot be read.
ReportInputError = RunDirError


@dataclass
class Run:
    """One run directory: its run.json (``record``; ``meta`` is the same as a dict) and its attempts, loaded on demand."""

    path: Path
    meta: dict[str, Any]
    #: run.json as read (None: the directory has attempts only).
    record: RunRecord | None = None

    @cached_property
    def sections(self) -> RunSections:
        """run.json's sections, typed (loadgen.results.sections); empty ones for a run without run.json."""
        return RunSections.from_dict(self.meta)

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)

    @property
    def scenario(self) -> dict[str, Any]:
        s = self.meta.get("scenario")
        return s if isinstance(s, dict) else {}

    @property
    def target(self) -> dict[str, Any]:
        """run.json's ``target`` (kind, dsn or endpoint redacted, ...); {} when it has none."""
        t = self.meta.get("target")
        return t if isinstance(t, dict) else {}

    @property
    def versions(self) -> dict[str, Any]:
        """run.json's ``versions`` (loadgen, Python, the server, ...); {} when it has none."""
        v = self.meta.get("versions")
        return v if isinstance(v, dict) else {}

    @property
    def accounts(self) -> int | None:
        return _as_int(self.scenario.get("accounts"))

    @property
    def users(self) -> int | None:
        return _as_int(self.scenario.get("users"))

    @property
    def completed(self) -> bool | None:
        c = self.meta.get("completed")
        return c if isinstance(c, bool) else None

    @property
    def collision_probability(self) -> float | None:
        """q = sum(p_i^2) of the key distribution, if the run recorded it."""
        q = _find_key(self.meta, ("collision_probability", "key_collision_probability"))
        return float(q) if isinstance(q, (int, float)) and not isinstance(q, bool) and 0 < q <= 1 else None

    def attempts(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The attempts table as pandas, columns as written (for notebooks and slicing)."""
        return rundir.read_attempts(self.path, columns).to_pandas()

    def attempt_files(self, required: tuple[str, ...] = ()) -> list[Path]:
        """The Parquet files holding the attempts, checked readable and holding the ``required`` columns
        (for readers that go through them a batch at a time: loadgen.report.reduce)."""
        path = self.path / rundir.ATTEMPTS_FILE
        present = set(rundir.attempts_schema(self.path).names)  # its format checked
        missing = [c for c in required if c not in present]
        if missing:
            raise ReportInputError(f"{path}: missing column(s) {', '.join(missing)}")
        return [path]

    def attempts_table(self, columns: list[str]) -> pa.Table:
        """Some columns of the attempts table, as Arrow (those the file has)."""
        return rundir.read_attempts(self.path, columns)

    @cached_property
    def compact(self) -> pd.DataFrame:
        """The report's compact frame (see :func:`compact`)."""
        return compact_from_arrow(rundir.read_attempts(self.path, list(_REPORT_COLUMNS)))


@dataclass
class Study:
    """What one PATH argument names: a single run, or a sweep of runs (cells)."""

    path: Path
    runs: list[Run]
    is_sweep: bool
    index: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        name = self.index.get("name") if isinstance(self.index.get("name"), str) else None
        return name or self.path.name


def load_run(path: Path | str) -> Run:
    """One run directory (or its attempts.parquet)."""
    dirs, is_sweep = find_run_dirs(Path(path))
    if is_sweep:
        raise ReportInputError(f"{path} is a sweep of {len(dirs)} runs; use load_study")
    return _load_meta(dirs[0])


def load_study(path: Path | str) -> Study:
    """A run or sweep directory, with every run's metadata (attempts load lazily)."""
    path = Path(path)
    dirs, is_sweep = find_run_dirs(path)
    index: dict[str, Any] = {}
    if is_sweep:
        try:
            sweep = rundir.read_sweep(path)
        except RunDirError:  # the cells are found without their index (a FormatError is no RunDirError: refused)
            sweep = None
        index = sweep.to_dict() if sweep is not None else {}
    runs = [_load_meta(d) for d in dirs]
    return Study(path=path if is_sweep else dirs[0], runs=runs, is_sweep=is_sweep, index=index)


def _load_meta(run_dir: Path) -> Run:
    record = rundir.read_run(run_dir)
    return Run(path=run_dir, meta=record.to_dict() if record is not None else {}, record=record)


def compact_from_arrow(table: pa.Table) -> pd.DataFrame:
    """The compact frame from an Arrow attempts table, without a Python object per row."""
    n = table.num_rows
    txn = table.column("txn_id").combine_chunks().dictionary_encode()
    start_us = pc.cast(table.column("started_at"), pa.timestamp("us", tz="UTC")).cast(pa.int64())
    outcome = table.column("outcome").combine_chunks().dictionary_encode()
    start_ms = start_us.to_numpy().astype("float64") / 1000.0
    latency = table.column("latency_ms").to_numpy().astype("float64", copy=False)
    data: dict[str, Any] = {
        "txn": txn.indices.to_numpy(zero_copy_only=False).astype("int64", copy=False),
        "attempt": table.column("attempt").to_numpy().astype("int32", copy=False),
        "start_ms": start_ms,
        "end_ms": start_ms + latency,
        "latency_ms": latency,
        "outcome": pd.Categorical.from_codes(outcome.indices.to_numpy(zero_copy_only=False), categories=outcome.dictionary.to_pylist()),
    }
    for key in ("payer", "payee"):
        if key in table.column_names:
            data[key] = table.column(key).to_numpy().astype("int64", copy=False)
        else:
            data[key] = np.zeros(n, dtype="int64")
    return pd.DataFrame(data)


def compact(attempts: pd.DataFrame) -> pd.DataFrame:
    """The compact frame from an attempts DataFrame in the data-contract's columns.

    Columns: ``txn`` (integer code of ``txn_id``), ``attempt``, ``start_ms`` and
    ``end_ms`` (epoch milliseconds), ``latency_ms``, ``outcome`` (categorical),
    ``payer``, ``payee``.
    """
    codes, _ = pd.factorize(attempts["txn_id"], sort=False)
    started = pd.to_datetime(attempts["started_at"], utc=True)
    start_ms = started.to_numpy(dtype="datetime64[us]").astype("int64") / 1000.0
    latency = attempts["latency_ms"].to_numpy(dtype="float64")
    n = len(attempts)
    return pd.DataFrame(
        {
            "txn": codes.astype("int64"),
            "attempt": attempts["attempt"].to_numpy(dtype="int32"),
            "start_ms": start_ms,
            "end_ms": start_ms + latency,
            "latency_ms": latency,
            "outcome": pd.Categorical(attempts["outcome"].astype(str).to_numpy()),
            "payer": attempts["payer"].to_numpy(dtype="int64") if "payer" in attempts else np.zeros(n, "int64"),
            "payee": attempts["payee"].to_numpy(dtype="int64") if "payee" in attempts else np.zeros(n, "int64"),
        }
    )


_SECRET_KEYS = re.compile(r"pass|secret|token|credential|auth", re.I)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+):[^@\s]*@")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.I)


def redact(value: Any) -> Any:
    """A copy of ``value`` with anything that looks like a secret replaced by ``***``."""
    if isinstance(value, dict):
        return {k: ("***" if _SECRET_KEYS.search(str(k)) and v not in (None, "", False) else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _KV_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", value))
    return value


def _find_key(doc: Any, names: tuple[str, ...]) -> Any:
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in names:
                return v
        for v in doc.values():
            found = _find_key(v, names)
            if found is not None:
                return found
    return None


def _as_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None
