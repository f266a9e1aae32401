"""A run's attempts reduced out of core: every figure from its Parquet files, in memory independent of their length.

What cannot be counted a row at a time is grouping attempts into transactions (tens of
millions of ids): DuckDB does it, in a temporary database that spills to disk past
:data:`MEMORY_LIMIT`. Everything else is counted by numpy over record batches
(:func:`batches`), a million rows at a time. Percentiles stay exact, numpy's linear
interpolation to the bit: :func:`order_statistics` finds the few ranked values they
need by radix selection (a histogram of 16 bits of each value's sortable key per pass
over the data, then the values of one bucket), never sorting the column.

Chosen over Arrow record batches alone after measuring both on the same 10 M attempts
(BENCHMARKS.md, "Bounded memory"): a hash partition of the ids written back to disk and
grouped part by part took 48.6 s and 1.17 GB, DuckDB's grouping 9.4 s and 565 MB.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loadgen.errors import LoadgenError
from loadgen.model.outcomes import COMMITTED, CONTENTION
from loadgen.results.metrics import PERCENTILES, Counts, conflicts_by_kind, outcome_counts, rates

__all__ = [
    "MEMORY_LIMIT",
    "BATCH_ROWS",
    "batches",
    "columns_of",
    "start_end_ms",
    "committed_mask",
    "percentiles_of",
    "order_statistics",
    "Transactions",
    "OutOfCoreError",
    "Tally",
    "ALL",
    "LedgerComparison",
    "compare_ledger",
    "summarize_files",
    "committed_latencies",
]

#: DuckDB's memory for grouping transactions; past it, it spills to a temporary directory.
MEMORY_LIMIT = "400MB"
#: DuckDB's memory once they are grouped: scans stream the table from its file (measured: RSS 474 -> 243 MB
#: for 9.3 M transactions, the scans no slower), and what Python counts next has the rest.
SCAN_MEMORY_LIMIT = "64MB"
#: Rows per record batch read from Parquet.
BATCH_ROWS = 1 << 17
#: A bucket this small is read whole and sorted (selection's last pass).
_COLLECT = 1 << 16
_DIGIT = 16

_COMMITTED = pa.array(sorted(COMMITTED), pa.string())
_CONTENTION = pa.array(sorted(CONTENTION), pa.string())


def columns_of(paths: Sequence[Path]) -> set[str]:
    """The columns the files have (the first file's schema; a run's files share one)."""
    return set(pq.read_schema(paths[0]).names) if paths else set()


def batches(paths: Sequence[Path], columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """The files' rows, ``columns`` only, a record batch of about :data:`BATCH_ROWS` at a time, in file order."""
    for path in paths:
        with pq.ParquetFile(path) as f:
            yield from f.iter_batches(batch_size=BATCH_ROWS, columns=list(columns))


def start_end_ms(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each attempt's start and end (epoch milliseconds) and latency, computed as the report frame does."""
    start_us = pc.cast(batch.column("started_at"), pa.timestamp("us", tz="UTC")).cast(pa.int64())
    start_ms = start_us.to_numpy().astype("float64") / 1000.0
    latency = batch.column("latency_ms").to_numpy().astype("float64", copy=False)
    return start_ms, start_ms + latency, latency


def committed_mask(outcome: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.is_in(outcome, value_set=_COMMITTED).to_numpy(zero_copy_only=False), dtype=bool)


# -- exact percentiles by selection ------------------------------------------------

#: A scan: a fresh iterator of (values, labels) per call; labels (an int per value) say which series a value is in.
Scan = Callable[[], Iterable[tuple[np.ndarray, np.ndarray | None]]]
#: Every value, whatever its label.
ALL = -1


def _keys(values: np.ndarray) -> np.ndarray:
    """Unsigned keys ordered as the float64 values are (negative values' bits flipped, the sign bit set on the rest)."""
    bits = np.ascontiguousarray(values, dtype="float64").view(np.uint64)
    negative = (bits >> np.uint64(63)).astype(bool)
    return np.where(negative, ~bits, bits | np.uint64(1 << 63))


def _value(key: int) -> float:
    bits = key & ~(1 << 63) if key >> 63 else ~key & ((1 << 64) - 1)
    return float(np.array([bits], dtype=np.uint64).view("float64")[0])


@dataclass
class _Group:
    """Values of one series whose keys start with ``prefix`` (``bits`` long), and the ranks wanted among them."""

    series: int
    bits: int
    prefix: int
    count: int | None
    ranks: dict[tuple[int, int], int] = field(default_factory=dict)  # (series, rank in series) -> rank in group


def order_statistics(scan: Scan, wanted: Mapping[int, Sequence[int]]) -> dict[tuple[int, int], float]:
    """The value of each rank (0-based, ascending) wanted in each series, exactly, in memory bounded by a few buckets.

    Each pass over ``scan`` narrows every rank to the keys sharing 16 more leading bits
    (a histogram of 65,536 counters); a bucket of at most 65,536 values is read whole and
    sorted. At most four passes; usually two or three.
    """
    found: dict[tuple[int, int], float] = {}
    groups = [_Group(s, 0, 0, None, {(s, r): r for r in ranks}) for s, ranks in wanted.items() if ranks]
    while groups:
        collect = [g for g in groups if g.count is not None and g.count <= _COLLECT]
        split = [g for g in groups if g not in collect]
        hist = {id(g): np.zeros(1 << _DIGIT, dtype=np.int64) for g in split}
        held: dict[int, list[np.ndarray]] = {id(g): [] for g in collect}
        for values, labels in scan():
            keys = _keys(values)
            for series in {g.series for g in groups}:
                sel = slice(None) if series == ALL or labels is None else labels == series
                k, v = keys[sel], values[sel]
                for g in (g for g in groups if g.series == series):
                    m = (k >> np.uint64(64 - g.bits)) == np.uint64(g.prefix) if g.bits else slice(None)
                    if id(g) in held:
                        held[id(g)].append(v[m])
                    else:
                        digit = (k[m] >> np.uint64(64 - g.bits - _DIGIT)) & np.uint64((1 << _DIGIT) - 1)
                        hist[id(g)] += np.bincount(digit.astype(np.int64), minlength=1 << _DIGIT)
        next_groups: dict[tuple[int, int, int], _Group] = {}
        for g in collect:
            ordered = np.sort(np.concatenate(held[id(g)]) if held[id(g)] else np.empty(0))
            for target, r in g.ranks.items():
                found[target] = float(ordered[r])
        for g in split:
            cum = np.cumsum(hist[id(g)])
            for target, r in g.ranks.items():
                d = int(np.searchsorted(cum, r, side="right"))
                below = int(cum[d - 1]) if d else 0
                bits, prefix = g.bits + _DIGIT, (g.prefix << _DIGIT) | d
                if bits == 64:  # every value in the bucket is the same value
                    found[target] = _value(prefix)
                    continue
                ng = next_groups.setdefault((g.series, bits, prefix), _Group(g.series, bits, prefix, int(hist[id(g)][d])))
                ng.ranks[target] = r - below
        groups = list(next_groups.values())
    return found


def _ranks(n: int, pcts: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy's linear method: the virtual index (n - 1) * q, its floor, the next index (clipped), the weight."""
    q = np.asarray(pcts, dtype="float64") / 100
    virtual = (n - 1) * q
    previous = np.floor(virtual)
    nxt = np.minimum(previous + 1, n - 1)
    gamma = np.asanyarray(virtual - previous, dtype="float64")
    return previous.astype(np.int64), nxt.astype(np.int64), gamma


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    # numpy's own interpolation (numpy.lib._function_base_impl._lerp), so the results match np.percentile bit for bit.
    diff = b - a
    out = np.add(a, diff * t)
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5)
    return out


def percentiles_of(scan: Scan, counts: dict[int, int], pcts: Sequence[float]) -> dict[int, list[float] | None]:
    """``np.percentile(values, pcts)`` of each series (by label, ``counts`` values each), without holding the values; None when empty."""
    plans = {s: _ranks(n, pcts) for s, n in counts.items() if n > 0}
    wanted = {s: sorted({*p[0].tolist(), *p[1].tolist()}) for s, p in plans.items()}
    found = order_statistics(scan, wanted)
    out: dict[int, list[float] | None] = {s: None for s, n in counts.items() if n <= 0}
    for s, (prev, nxt, gamma) in plans.items():
        a = np.array([found[(s, int(i))] for i in prev])
        b = np.array([found[(s, int(i))] for i in nxt])
        out[s] = [float(x) for x in _lerp(a, b, gamma)]
    return out


# -- transactions, grouped by DuckDB ----------------------------------------------


class OutOfCoreError(LoadgenError):
    """A query over the attempts failed (DuckDB: out of memory, out of disk for its spill)."""


class Transactions:
    """A run's attempts grouped into transactions, one row each, in a temporary DuckDB database that spills to disk.

    Attempts are grouped by the MD5 of their transfer id, 128 bits (twice as fast as by
    the 36 characters, measured): as unique as the ids themselves, which are UUIDs of
    122 random bits.

    Columns: ``txn`` (the id's MD5), ``attempts`` (the highest attempt number), ``start_ms``
    (first start), ``end_ms`` (last end), ``committed`` (any attempt committed),
    ``last_committed`` (the attempt with the highest number committed), ``commits`` (its
    committed attempts: more than one is a transfer committed twice). Times are computed
    as :func:`start_end_ms` computes them.

    Grouping is the costliest step of finishing a run and of its report (1.4 s per 5 M
    attempts): :meth:`keep` hands one grouping on to the next :meth:`of` the same,
    unchanged files (a run's closing report, right after its finish), instead of closing it.
    """

    #: The grouping kept by :meth:`keep`, with the files it grouped as they were (path, size, mtime).
    _kept: ClassVar[tuple[tuple[tuple[str, int, int], ...], Transactions] | None] = None

    @classmethod
    def of(cls, paths: Sequence[Path]) -> Transactions:
        """The kept grouping if it grouped these same files and they have not changed since, else a new one."""
        kept, Transactions._kept = Transactions._kept, None
        if kept is not None:
            if kept[0] == _files_as_now(paths):
                return kept[1]
            kept[1].close()
        return cls(paths)

    @staticmethod
    def discard_kept() -> None:
        """Close the kept grouping, if any (its reader has come and gone, or the process is leaving)."""
        kept, Transactions._kept = Transactions._kept, None
        if kept is not None:
            kept[1].close()

    def __init__(self, paths: Sequence[Path], memory_limit: str = MEMORY_LIMIT) -> None:
        import duckdb  # a second or so of import: only where transactions are grouped

        self._files = _files_as_now(paths)
        self._keep = False
        self._memory = memory_limit
        self._dir = Path(tempfile.mkdtemp(prefix="loadgen-txns-"))
        try:
            self.con = duckdb.connect(
                str(self._dir / "txns.duckdb"),
                config={"memory_limit": memory_limit, "temp_directory": str(self._dir / "spill"), "preserve_insertion_order": False},
            )
            committed = ", ".join(f"'{o}'" for o in sorted(COMMITTED))
            files = [str(p) for p in paths]
            self.con.execute(
                f"""
                CREATE TABLE txns AS
                SELECT txn, max(attempt) AS attempts, min(start_ms) AS start_ms, max(end_ms) AS end_ms,
                       bool_or(ok) AS committed, arg_max(ok, attempt) AS last_committed, count(*) FILTER (ok) AS commits
                FROM (SELECT txn, attempt, start_ms, start_ms + latency_ms AS end_ms, outcome IN ({committed}) AS ok
                      FROM (SELECT md5_number(txn_id) AS txn, attempt, epoch_us(started_at)::DOUBLE / 1000.0 AS start_ms,
                                   latency_ms::DOUBLE AS latency_ms, outcome
                            FROM read_parquet(?)))
                GROUP BY txn
                """,
                [files],
            )
            self.con.execute(f"SET memory_limit = '{SCAN_MEMORY_LIMIT}'")
        except duckdb.Error as e:
            self.close()
            raise OutOfCoreError(f"the attempts could not be grouped into transactions: {e}".splitlines()[0]) from None
        except BaseException:
            self.close()
            raise

    @contextlib.contextmanager
    def working_memory(self) -> Iterator[None]:
        """The grouping's memory limit for a query that builds hash tables (a join), then back to scanning's."""
        self.con.execute(f"SET memory_limit = '{self._memory}'")
        try:
            yield
        finally:
            self.con.execute(f"SET memory_limit = '{SCAN_MEMORY_LIMIT}'")

    def one(self, sql: str) -> tuple[Any, ...]:
        rows = self.con.execute(sql).fetchall()  # fetched to the end: the connection is free for the next query
        return tuple(rows[0])

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.con.execute(sql).fetchall()]

    def scan(self, columns: str) -> Iterator[pa.RecordBatch]:
        """The transactions' ``columns`` (SQL select list), a record batch at a time."""
        reader = self.con.sql(f"SELECT {columns} FROM txns").to_arrow_reader(BATCH_ROWS)
        yield from reader

    def keep(self) -> None:
        """At exit, hand this grouping on to the next :meth:`of` of the same files instead of closing it (once)."""
        self._keep = True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.con.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Transactions:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._keep and exc[0] is None:
            self._keep = False
            Transactions.discard_kept()
            Transactions._kept = (self._files, self)
        else:
            self.close()


def _files_as_now(paths: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    """Each file's resolved path, size and modification time: whether a grouping still describes them."""
    out = []
    for p in paths:
        st = Path(p).stat()
        out.append((str(Path(p).resolve()), st.st_size, st.st_mtime_ns))
    return tuple(out)


atexit.register(Transactions.discard_kept)  # its temporary directory goes with the process


class Tally:
    """Counts by value (outcome, SQLSTATE) over record batches."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, column: pa.Array | pa.ChunkedArray) -> None:
        for row in pc.value_counts(column).to_pylist():
            if row["values"] is not None:
                self.counts[row["values"]] = self.counts.get(row["values"], 0) + int(row["counts"])


def committed_latencies(paths: Sequence[Path], cap: int, committed: int | None = None) -> tuple[np.ndarray, int]:
    """Committed attempts' latencies (ms), at most ``cap`` of them: all when there are no more,
    else every k-th in file order (a systematic sample across the whole run); and how many there were.
    ``committed``: their number, if known (saves a pass)."""
    total = 0
    if committed is None:
        for b in batches(paths, ["outcome"]):
            total += int(committed_mask(b.column("outcome")).sum())
    else:
        total = committed
    step = max(1, -(-total // cap))
    kept: list[np.ndarray] = []
    seen = 0
    for b in batches(paths, ["latency_ms", "outcome"]):
        lat = b.column("latency_ms").to_numpy().astype("float64", copy=False)[committed_mask(b.column("outcome"))]
        first = (-seen) % step
        kept.append(lat[first::step].copy())
        seen += len(lat)
    return (np.concatenate(kept) if kept else np.empty(0))[:cap], total


@dataclass(frozen=True)
class LedgerComparison:
    """The ledger against the commits recorded (loadgen.db.schema.check_invariants' ledger checks)."""

    ledger_rows: int
    #: Distinct transfer ids recorded as committed.
    recorded_ids: int
    #: Recorded as committed, not in the ledger.
    missing: int
    #: In the ledger, never recorded as committed.
    extra: int
    #: Committed attempts beyond one per transfer id.
    duplicates: int

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return self.ledger_rows, self.recorded_ids, self.missing, self.extra, self.duplicates


def compare_ledger(txns: Transactions, ledger_pages: Iterable[pa.Array]) -> LedgerComparison:
    """The ledger's ids (pages of text, as the database gives them) against the committed attempts, out of core:
    the ledger kept by the MD5 of each id in the transactions' temporary database, beside them."""
    import duckdb

    try:
        with txns.working_memory():
            return _compare_ledger(txns, ledger_pages)
    except duckdb.Error as e:
        raise OutOfCoreError(f"the ledger could not be compared with the recorded commits: {e}".splitlines()[0]) from None


def _compare_ledger(txns: Transactions, ledger_pages: Iterable[pa.Array]) -> LedgerComparison:
    con = txns.con
    con.execute("CREATE OR REPLACE TABLE ledger (txn UHUGEINT)")
    for page in ledger_pages:
        con.register("page", pa.table({"id": page}))
        con.execute("INSERT INTO ledger SELECT md5_number(id) FROM page")
        con.unregister("page")
    # One aggregation over both sides, not anti-joins: a GROUP BY spills to disk past the memory
    # limit, a hash join's build side did not (8 M attempts: out of memory at 400 MB).
    missing, extra = txns.one(
        """
        SELECT count(*) FILTER (WHERE recorded AND NOT stored), count(*) FILTER (WHERE stored AND NOT recorded)
        FROM (SELECT txn, bool_or(side = 0) AS recorded, bool_or(side = 1) AS stored
              FROM (SELECT txn, 0 AS side FROM txns WHERE commits > 0 UNION ALL SELECT txn, 1 AS side FROM ledger)
              GROUP BY txn)
        """
    )
    ledger_rows, recorded, duplicates = txns.one(
        "SELECT (SELECT count(*) FROM ledger), count(*) FILTER (commits > 0), coalesce(sum(commits - 1) FILTER (commits > 1), 0) FROM txns"
    )
    con.execute("DROP TABLE ledger")
    return LedgerComparison(int(ledger_rows), int(recorded), int(missing), int(extra), int(duplicates))


def summarize_files(
    paths: Sequence[Path], txns: Transactions | None = None
) -> tuple[dict[str, Any], float | None, tuple[float, float] | None]:
    """run.json's summary (the figures of loadgen.results.metrics.summarize, the same to the last bit but for
    float sums), the mean in flight (metrics.in_flight_mean) and the attempts' span (results.fixed_cost.attempt_span),
    from the attempt files, out of core; ``txns``: their transactions, if grouped already."""
    n = retries = 0
    latency_ms = 0.0
    first_us: int | None = None
    t0, t_end = math.inf, -math.inf
    outcomes, sqlstates, conflict_states = Tally(), Tally(), Tally()
    for b in batches(paths, ["attempt", "started_at", "latency_ms", "outcome", "sqlstate"]):
        if b.num_rows == 0:
            continue
        start, end, lat = start_end_ms(b)
        n += b.num_rows
        retries += int((b.column("attempt").to_numpy() >= 2).sum())
        latency_ms += float(lat.sum())
        t0, t_end = min(t0, float(start.min())), max(t_end, float(end.max()))
        us = int(pc.min(pc.cast(b.column("started_at"), pa.timestamp("us", tz="UTC")).cast(pa.int64())).as_py())
        first_us = us if first_us is None else min(first_us, us)
        outcomes.add(b.column("outcome"))
        sqlstates.add(b.column("sqlstate"))
        contention = pc.fill_null(pc.is_in(b.column("outcome"), value_set=_CONTENTION), False)
        conflict_states.add(pc.fill_null(pc.filter(b.column("sqlstate"), contention), "?"))
    by_outcome = {k: v for k, v in outcomes.counts.items() if v}
    commits, conflicts = outcome_counts(by_outcome)
    elapsed_s = (t_end - t0) / 1000.0 if n else 0.0

    def attempt_scan() -> Iterator[tuple[np.ndarray, None]]:
        for b in batches(paths, ["latency_ms"]):
            yield b.column("latency_ms").to_numpy().astype("float64", copy=False), None

    att_p = percentiles_of(attempt_scan, {ALL: n}, PERCENTILES)[ALL]
    t = retried = max_attempts = failed_txns = 0
    txn_p = None
    if n:
        with contextlib.ExitStack() as stack:
            if txns is None:
                txns = stack.enter_context(Transactions(paths))
            t, retried, max_attempts, failed_txns = txns.one(
                "SELECT count(*), count(*) FILTER (attempts >= 2), coalesce(max(attempts), 0), count(*) FILTER (NOT last_committed) FROM txns"
            )

            def txn_scan() -> Iterator[tuple[np.ndarray, None]]:
                for tb in txns.scan("start_ms, end_ms"):
                    yield tb.column(1).to_numpy() - tb.column(0).to_numpy(), None

            txn_p = percentiles_of(txn_scan, {ALL: int(t)}, PERCENTILES)[ALL]

    def named(values: list[float] | None) -> dict[str, float | None]:
        return {f"p{p:g}": (values[i] if values is not None else None) for i, p in enumerate(PERCENTILES)}

    counts = Counts(n, commits, conflicts, retries, int(t), int(retried), n - commits, elapsed_s)
    summary = {
        "attempts": n,
        "transactions": int(t),
        "commits": commits,
        "conflicts": conflicts,
        "conflicts_by_kind": conflicts_by_kind(by_outcome),
        "conflicts_by_sqlstate": dict(sorted((k, v) for k, v in conflict_states.counts.items() if v)),
        "outcomes": dict(sorted(by_outcome.items())),
        "sqlstates": dict(sorted(sqlstates.counts.items())),
        "failed_attempts": n - commits,
        "retries": retries,
        **rates(counts),
        "max_attempts": int(max_attempts),
        "failed_transactions": int(failed_txns),
        "elapsed_s": elapsed_s,
        "attempt_latency_ms": named(att_p),
        "transaction_latency_ms": named(txn_p),
    }
    window_ms = t_end - t0
    in_flight = latency_ms / window_ms if n and window_ms > 0 else None
    span = (first_us / 1e6, t_end / 1000.0) if n and first_us is not None else None
    return summary, in_flight, span
