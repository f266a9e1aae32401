"""How long `loadgen report` takes over a big run: synthesize N attempts (default 10 million), time the report.

    python benchmarks/report_10m.py [--attempts 10000000] [--dir /tmp/loadgen-bench-10m]

The attempts are made with numpy (no Python loop per row): transactions over 1,000
accounts with geometric retry counts (about 7% conflicts, as in the talk), uuid-like
36-character transaction ids, 10 minutes of start times, exponential latencies. The
report then runs as a user would run it, in a child process, and the wall time and
the child's peak resident memory are printed. CPU heavy: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def _uuid_like(rng: np.random.Generator, n: int) -> pa.Array:
    """n distinct-looking 36-character ids (8-4-4-4-12 hex), built as a fixed-width byte matrix."""
    hexchars = np.frombuffer(b"0123456789abcdef", dtype="S1")
    out = np.empty((n, 36), dtype="S1")
    digits = rng.integers(0, 16, size=(n, 32), dtype=np.uint8)
    cols = [i for i in range(36) if i not in (8, 13, 18, 23)]
    out[:, cols] = hexchars[digits]
    out[:, [8, 13, 18, 23]] = b"-"
    fixed = out.view("S36").ravel()
    return pa.array(fixed, pa.binary(36)).cast(pa.string())


#: Attempts made and written at a time: 50 M attempts are made as five runs' worth side by side.
CHUNK = 10_000_000


def synthesize(run_dir: Path, attempts: int, seed: int = 1) -> int:
    """``attempts`` attempts into run_dir/attempts.parquet, made and written CHUNK at a time (memory: one chunk)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    total = 0
    writer: pq.ParquetWriter | None = None
    for i, start in enumerate(range(0, attempts, CHUNK)):
        table = _chunk(np.random.default_rng(seed + i), min(CHUNK, attempts - start))
        if writer is None:
            writer = pq.ParquetWriter(run_dir / "attempts.parquet", table.schema, compression="zstd")
        writer.write_table(table, row_group_size=1_000_000)
        total += table.num_rows
        del table
    assert writer is not None
    writer.close()
    _write_meta(run_dir)
    return total


def _chunk(rng: np.random.Generator, attempts: int) -> pa.Table:
    p_conflict = 0.07
    # Attempts per transaction: geometric (1 + conflicts before the commit), capped at 20.
    n_txn = int(attempts * (1 - p_conflict))
    per_txn = np.minimum(rng.geometric(1 - p_conflict, size=n_txn), 20)
    total = int(per_txn.sum())
    txn = np.repeat(np.arange(n_txn), per_txn)
    first = np.repeat(np.cumsum(per_txn) - per_txn, per_txn)
    attempt = (np.arange(total) - first + 1).astype(np.int32)
    last = attempt == np.repeat(per_txn, per_txn)
    latency = rng.exponential(20.0, size=total) + 2.0
    # Transactions start uniformly over 10 minutes; a retry starts when the previous try ended.
    t0_us = np.int64(1_767_225_600_000_000)
    txn_start = np.sort(rng.uniform(0, 600e6, size=n_txn)).astype(np.int64)
    lat_us = (latency * 1000).astype(np.int64)
    cum = np.cumsum(lat_us) - lat_us
    offset = cum - np.repeat(cum[np.cumsum(per_txn) - per_txn], per_txn)
    started = t0_us + txn_start[txn] + offset
    outcome_codes = np.where(last, 0, 1).astype(np.int8)  # 0 committed, 1 conflict
    outcome_codes[last & (rng.random(total) < 0.001)] = 2  # a few give up with an error
    outcomes = pa.DictionaryArray.from_arrays(pa.array(outcome_codes), pa.array(["committed", "conflict", "error"]))
    payer = rng.integers(1, 1001, size=n_txn)
    payee = (payer + rng.integers(1, 1000, size=n_txn) - 1) % 1000 + 1
    ids = _uuid_like(rng, n_txn)
    table = pa.table(
        {
            "run_id": pa.DictionaryArray.from_arrays(pa.array(np.zeros(total, np.int8)), pa.array(["bench-10m"])),
            "txn_id": ids.take(pa.array(txn)),
            "attempt": pa.array(attempt),
            "started_at": pa.array(started, pa.timestamp("us", tz="UTC")),
            "latency_ms": pa.array(latency),
            "outcome": outcomes.cast(pa.string()),
            "sqlstate": pa.array(np.where(outcome_codes == 1, "40001", None)),
            "payer": pa.array(payer[txn]),
            "payee": pa.array(payee[txn]),
            "amount": pa.array(np.ones(total, np.int64)),
        }
    )
    return table


def _write_meta(run_dir: Path) -> None:
    meta = {
        "format": 1,
        "run_id": "bench-10m",
        "scenario": {"name": "bench", "accounts": 1000, "users": 1000, "distribution": "uniform", "duration_s": 600},
        "target": {"kind": "synthetic"},
        "completed": True,
        "invariants_hold": True,
        "command_line": ["benchmarks/report_10m.py"],
    }
    (run_dir / "run.json").write_text(json.dumps(meta, indent=2))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attempts", type=int, default=10_000_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/loadgen-bench-10m"))
    ap.add_argument("--keep", action="store_true", help="keep the synthesized run directory")
    args = ap.parse_args()
    run_dir = args.dir / "run"
    shutil.rmtree(args.dir, ignore_errors=True)
    t = time.perf_counter()
    rows = synthesize(run_dir, args.attempts)
    size = (run_dir / "attempts.parquet").stat().st_size
    print(f"synthesized {rows:,} attempts ({size / 2**20:.0f} MiB parquet) in {time.perf_counter() - t:.1f} s")
    out = args.dir / "report.html"
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "loadgen.cli", "report", str(run_dir), "-o", str(out)])
    wall = time.perf_counter() - t
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"loadgen report: exit {r.returncode}, {wall:.1f} s wall, peak RSS {peak_mib:,.0f} MiB, {out.stat().st_size / 1024:.0f} KiB of HTML"
        if out.exists()
        else f"loadgen report failed: exit {r.returncode}"
    )
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
