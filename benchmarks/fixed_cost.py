"""A run's fixed cost: from `loadgen run` to the first attempt, and from the last attempt to exit.

    PYTHONPATH=. python benchmarks/fixed_cost.py --dsn "host=127.0.0.1 port=5432 user=postgres dbname=postgres" [--runs 3]
    PYTHONPATH=. LOADGEN_HOME=/tmp/lg-bench python benchmarks/fixed_cost.py        # the embedded server
    PYTHONPATH=. python benchmarks/fixed_cost.py --dsn ... --baseline /path/to/other/checkout --runs 5

Runs ``loadgen run --accounts 1000 --users 16 --duration 2`` as a user would (a new
process each time) and measures from outside: the process's start and exit around
the first attempt's start and the last attempt's end (from attempts.parquet). Prints
that beside what run.json reports (``client.fixed_cost_s``, measured inside up to the
report written) and the process's CPU time, in all and outside the measured period
(``fixed_cpu_s``: the process's CPU less run.json's ``client.cpu_s``).

``--baseline DIR`` alternates runs of another checkout's loadgen (DIR on PYTHONPATH)
with this one's, one each per round, so both meet the same load on a shared machine;
each line then says which it was (``tree``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent


def one_run(dsn: str | None, accounts: int, users: int, duration: float, out: Path, tree: Path = ROOT) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "loadgen.cli", "run", "--accounts", str(accounts), "--users", str(users), "--duration", f"{duration:g}"]
    cmd += ["-q", "--out", str(out)] + (["--target", "postgres", "--dsn", dsn] if dsn else [])
    load = os.getloadavg()[0]
    before, t0 = os.times(), time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(tree)), cwd=tree, timeout=600)
    t1, after = time.time(), os.times()
    if proc.returncode != 0:
        raise SystemExit(f"loadgen failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    run_dir = max(out.iterdir(), key=lambda p: p.stat().st_mtime)
    table = pq.read_table(run_dir / "attempts.parquet", columns=["started_at", "latency_ms"])
    starts = pc.divide(pc.cast(pc.cast(table["started_at"], "int64"), "float64"), 1e6)
    first = pc.min(starts).as_py()
    last = pc.max(pc.add(starts, pc.divide(table["latency_ms"], 1000.0))).as_py()
    doc = json.loads((run_dir / "run.json").read_text())
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {
        "startup_s": round(first - t0, 3),
        "teardown_s": round(t1 - last, 3),
        "fixed_cost_s": round(first - t0 + t1 - last, 3),
        "run_json_fixed_cost_s": doc["client"].get("fixed_cost_s"),
        "process_cpu_s": round(cpu, 3),
        "run_cpu_s": doc["client"].get("cpu_s"),
        # The CPU outside the measured period: moves far less with the machine's load than wall time.
        "fixed_cpu_s": round(cpu - doc["client"]["cpu_s"], 3) if doc["client"].get("cpu_s") is not None else None,
        "loadavg_1m_before": load,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", help="a PostgreSQL (default: the embedded one)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--accounts", type=int, default=1000)
    p.add_argument("--users", type=int, default=16)
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--json", type=Path, help="write all measurements here")
    p.add_argument("--baseline", type=Path, help="another checkout of loadgen, run alternately with this one")
    args = p.parse_args()
    out = Path(tempfile.mkdtemp(prefix="lg-fixed-"))
    trees = {"this": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    runs = []
    for _ in range(args.runs):
        for name, tree in trees.items():
            m = one_run(args.dsn, args.accounts, args.users, args.duration, out, tree) | ({"tree": name} if args.baseline else {})
            runs.append(m)
            print(json.dumps(m), flush=True)
    summary: dict[str, Any] = {"loadavg_after": os.getloadavg()}
    for name in trees:
        mine = [m for m in runs if m.get("tree", "this") == name]
        prefix = f"{name}_" if args.baseline else ""
        summary[f"{prefix}fixed_cost_s_median"] = statistics.median(m["fixed_cost_s"] for m in mine)
        summary[f"{prefix}fixed_cpu_s_median"] = statistics.median(m["fixed_cpu_s"] for m in mine if m["fixed_cpu_s"] is not None)
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "runs": runs,
                    "summary": summary,
                    "settings": vars(args) | {"dsn": None, "json": None, "baseline": str(args.baseline) if args.baseline else None},
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
