"""attempts.parquet: its Arrow schema and format, the recorder that buffers every attempt, the writer.

(Its reader is loadgen.results.rundir.read_attempts.)

Appending a bare tuple (loadgen.model.attempt's field order) to a list is the cheapest
record path Python has; the columns are built when the rows go to disk (each second,
loadgen.results.stream), and the file is written once, at the end, row group by row group.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loadgen.model.attempt import ATTEMPT_FIELDS, Attempt, AttemptRow
from loadgen.results.records import check_format

__all__ = [
    "AttemptRecorder",
    "ATTEMPT_SCHEMA",
    "ATTEMPTS_FILE",
    "ATTEMPTS_FORMAT",
    "ATTEMPTS_FORMAT_KEY",
    "ROW_GROUP_ROWS",
    "attempts_format",
    "write_attempts",
]

ATTEMPTS_FILE = "attempts.parquet"
#: attempts.parquet's layout version, kept in the Parquet schema's metadata under
#: :data:`ATTEMPTS_FORMAT_KEY` (1: the data contract of DESIGN.md; a file without it is a 1).
ATTEMPTS_FORMAT = 1
ATTEMPTS_FORMAT_KEY = b"loadgen.attempts_format"

# The ``outcome`` column holds loadgen.model.outcomes.Outcome names.

#: attempts.parquet's columns: an attempt's fields (loadgen.model.attempt.Attempt) and where it ran.
ATTEMPT_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("txn_id", pa.string()),
        ("attempt", pa.int32()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("latency_ms", pa.float64()),
        ("outcome", pa.string()),
        ("sqlstate", pa.string()),
        ("oc_code", pa.string()),
        ("payer", pa.int64()),
        ("payee", pa.int64()),
        ("amount", pa.int64()),
        ("backoff_ms", pa.float64()),
        ("commit_unknown", pa.bool_()),
        ("conn_wait_ms", pa.float64()),
        #: Where a failed attempt ended: its transaction shape's step (null when committed).
        ("failed_at", pa.string()),
        ("user", pa.int32()),
        ("worker", pa.string()),
        #: The sweep cell's slug (None outside a sweep).
        ("cell", pa.string()),
    ],
    metadata={ATTEMPTS_FORMAT_KEY: str(ATTEMPTS_FORMAT).encode()},
)


class AttemptRecorder:
    """Collects attempt rows from every user of one process."""

    def __init__(self, run_id: str, worker: str = "local", cell: str | None = None) -> None:
        self.run_id = run_id
        self.worker = worker
        self.cell = cell
        self.rows: list[AttemptRow] = []
        self.users: list[int] = []

    def add(self, row: AttemptRow, user: int) -> None:
        self.rows.append(row)
        self.users.append(user)

    def __len__(self) -> int:
        return len(self.rows)

    def attempts(self) -> list[Attempt]:
        """The rows so far with their fields named (for tests and inspection, not the hot path)."""
        return [Attempt._make(r) for r in self.rows]

    def to_table(self) -> pa.Table:
        n = len(self.rows)
        columns: dict[str, Any] = dict(zip(ATTEMPT_FIELDS, map(list, zip(*self.rows)))) if n else {f: [] for f in ATTEMPT_FIELDS}
        started = pa.array(columns.pop("started_at"), pa.float64())
        micros = pc.cast(pc.round(pc.multiply(started, 1_000_000)), pa.int64())
        arrays = {
            "run_id": pa.array([self.run_id] * n, pa.string()),
            "started_at": micros.cast(pa.timestamp("us", tz="UTC")),
            "user": pa.array(self.users, pa.int32()),
            "worker": pa.array([self.worker] * n, pa.string()),
            "cell": pa.array([self.cell] * n, pa.string()),
        }
        for name in ATTEMPT_FIELDS:
            if name in columns:
                arrays[name] = pa.array(columns[name], ATTEMPT_SCHEMA.field(name).type)
        return pa.table([arrays[f.name] for f in ATTEMPT_SCHEMA], schema=ATTEMPT_SCHEMA)


#: Rows per row group of attempts.parquet. Writing holds at most about this many rows
#: (some 20 MB) whatever the run's length; row groups this large still compress and read
#: as well as one group for the whole file.
ROW_GROUP_ROWS = 128 * 1024


#: Columns whose values repeat (outcomes, accounts, workers...): dictionary-encoded. Ids, start
#: times and latencies are all but unique, where a dictionary only costs (a third more bytes at 128k rows a group).
_DICTIONARY_COLUMNS = [name for name in ATTEMPT_SCHEMA.names if name not in ("txn_id", "started_at", "latency_ms")]


def write_attempts(tables: pa.Table | Iterable[pa.Table], path: Path) -> int:
    """Write ``tables`` (in order) as the one attempts.parquet, a row group at a time; the rows written.

    Atomic: a reader never sees half a file. Streamed: pieces are gathered into row
    groups of :data:`ROW_GROUP_ROWS` and written as each fills, so a run of hours
    is written without its attempts ever being in memory at once.
    """
    tmp = path.with_suffix(".parquet.tmp")
    rows = 0
    with pq.ParquetWriter(tmp, ATTEMPT_SCHEMA, compression="zstd", use_dictionary=_DICTIONARY_COLUMNS) as writer:
        pending: list[pa.Table] = []
        held = 0
        for table in [tables] if isinstance(tables, pa.Table) else tables:
            pending.append(table if table.schema.equals(ATTEMPT_SCHEMA) else table.select(ATTEMPT_SCHEMA.names).cast(ATTEMPT_SCHEMA))
            held += table.num_rows
            while held >= ROW_GROUP_ROWS:
                group = pa.concat_tables(pending)
                writer.write_table(group.slice(0, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
                rest = group.slice(ROW_GROUP_ROWS)
                pending, held = [rest], rest.num_rows
                rows += ROW_GROUP_ROWS
        if held:
            writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
            rows += held
    tmp.replace(path)
    return rows


def attempts_format(path: Path, schema: pa.Schema) -> int:
    """The layout version ``schema`` (read from ``path``) says it has, if this loadgen reads it
    (loadgen.results.records.FormatError if not)."""
    raw = (schema.metadata or {}).get(ATTEMPTS_FORMAT_KEY)
    try:
        found: object = int(raw) if raw is not None else None
    except ValueError:
        found = raw.decode(errors="replace") if raw is not None else None
    return check_format(path, found, ATTEMPTS_FORMAT)
