"""Concurrency fidelity and memory: 1,000 users whose transaction waits 1 s on the server.

    PYTHONPATH=. LOADGEN_HOME=/tmp/lg-bench python benchmarks/concurrency.py [--users 1000] [--duration 30]

Each user runs, in a loop, a transaction that holds its connection for one second
on the server (``SELECT pg_sleep(1)`` then COMMIT), through loadgen's real path:
Locust users, the retry loop, the connection pool, the recorder. If 1,000 users are
1,000 concurrent transactions, that is about 1,000 transactions/s with about 1,000
of them in flight. Measured after the ramp-up (the first ``--warmup`` seconds):

- transactions/s: commits whose attempt started after the warm-up, per second;
- in flight: sampled once a second from the server (``pg_stat_activity``: loadgen's
  sessions running pg_sleep), and from the records (attempts overlapping each
  sampled instant);
- memory: the loadgen process's resident set (VmRSS sampled, VmHWM at the end).
The ledger invariant does not hold here by design (these transactions write nothing).
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from loadgen.engine import runner  # noqa: E402
from loadgen.engine.users import SharedUserState  # noqa: E402
from loadgen.model.scenario import Scenario  # noqa: E402
from loadgen.targets.base import EmbeddedTarget  # noqa: E402
from loadgen.targets.embedded import EmbeddedPostgres  # noqa: E402


def sleep_one_second(conn: psycopg.Connection[Any], req: Any, phase: Any = None) -> None:
    """The benchmark's transaction: one second on the server, then COMMIT."""
    conn.execute("SELECT pg_sleep(1)")
    if phase is not None:
        phase.step = "commit"
    conn.commit()


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--warmup", type=float, default=10.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    home = Path(os.environ.get("LOADGEN_HOME") or tempfile.mkdtemp(prefix="lg-bench-", dir="/tmp"))
    server = EmbeddedPostgres(home)
    target = EmbeddedTarget(server)
    target.prepare(args.users)
    probe = psycopg.connect(server.conninfo, autocommit=True)
    samples: list[dict[str, float]] = []

    def on_progress(elapsed: float, env: Any) -> None:
        active = probe.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'loadgen' AND state = 'active' AND query LIKE '%pg_sleep%'"
        ).fetchone()[0]  # type: ignore[index]
        samples.append(
            {
                "t": elapsed,
                "wall": time.time(),
                "server_in_flight": active,
                "users": env.runner.user_count,
                "rss_mb": _status_kb("VmRSS") / 1024,
            }
        )

    SharedUserState.transaction = staticmethod(sleep_one_second)  # type: ignore[assignment]
    scenario = Scenario(name="fidelity", accounts=1000, users=args.users, spawn_rate=float(args.users), duration_s=args.duration)
    out = Path(tempfile.mkdtemp(prefix="lg-fidelity-"))
    load0 = os.getloadavg()
    result = runner.run(scenario, target, out, runner.RunOptions(on_progress=on_progress))
    peak_rss_mb = _status_kb("VmHWM") / 1024
    probe.close()

    df = pq.read_table(result.run_dir / "attempts.parquet").to_pandas()
    start = df["started_at"].astype("int64").to_numpy() / 1e6  # epoch seconds
    end = start + df["latency_ms"].to_numpy() / 1000.0
    t0 = start.min() + args.warmup
    t1 = start.min() + args.duration - 1.5  # whole seconds before the stop
    committed = df["outcome"].to_numpy() == "committed"
    window = committed & (end >= t0) & (end < t1)
    tps = window.sum() / (t1 - t0)
    steady = [s for s in samples if t0 <= s["wall"] < t1]
    recorded_in_flight = [int(((start <= s["wall"]) & (end > s["wall"])).sum()) for s in steady]
    summary = {
        "users": args.users,
        "transactions_per_s": round(float(tps), 1),
        "server_in_flight_min": min((s["server_in_flight"] for s in steady), default=None),
        "server_in_flight_mean": round(statistics.mean(s["server_in_flight"] for s in steady), 1) if steady else None,
        "recorded_in_flight_min": min(recorded_in_flight, default=None),
        "recorded_in_flight_mean": round(statistics.mean(recorded_in_flight), 1) if recorded_in_flight else None,
        "attempt_latency_p50_ms": result.summary["attempt_latency_ms"]["p50"],
        "attempt_latency_p99_ms": result.summary["attempt_latency_ms"]["p99"],
        "rss_mb_max_sampled": round(max((s["rss_mb"] for s in samples), default=0.0), 1),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "client": result.client,
        "loadavg_before": load0,
        "loadavg_after": os.getloadavg(),
        "cores": os.cpu_count(),
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "samples": samples}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
