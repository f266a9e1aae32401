"""Where a long run's resident memory goes: Python objects by type, Arrow's pool, and the rest.

    PYTHONPATH=. python benchmarks/memory_probe.py [--duration 8m] [--users 16] [--every 60]

One `loadgen run` (embedded target, closed loop, no rate limit) in this process, through
``loadgen.engine.runner.run``; every ``--every`` seconds of the load it records the
resident set (VmRSS), the bytes Arrow's memory pool holds (``pyarrow.total_allocated_bytes``),
the number of objects the collector tracks, and the ten object types that grew most since the
first sample. The soak (benchmarks/soak.py) says whether memory grows; this says what grows.
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

import argparse
import collections
import gc
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa

from loadgen.engine import runner
from loadgen.engine.options import RunOptions
from loadgen.model.scenario import Scenario
from loadgen.targets.base import EmbeddedTarget
from loadgen.targets.embedded import EmbeddedPostgres, default_home


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def by_type() -> collections.Counter[str]:
    return collections.Counter(type(o).__name__ for o in gc.get_objects())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=480.0, help="seconds")
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--accounts", type=int, default=1000)
    ap.add_argument("--every", type=float, default=60.0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    samples: list[dict[str, Any]] = []
    first: list[collections.Counter[str]] = []
    due = [args.every]

    def sample(elapsed: float, env: Any) -> None:
        if elapsed < due[0]:
            return
        due[0] += args.every
        counts = by_type()
        if not first:
            first.append(counts)
        grew = (counts - first[0]).most_common(10)
        s = {
            "t_s": round(elapsed),
            "rss_mb": round(rss_mb(), 1),
            "arrow_mb": round(pa.total_allocated_bytes() / 2**20, 1),
            "objects": sum(counts.values()),
            "grew_since_first": grew,
        }
        samples.append(s)
        print(json.dumps(s), flush=True)

    target = EmbeddedTarget(EmbeddedPostgres(default_home()))
    scenario = Scenario(accounts=args.accounts, users=args.users, duration_s=args.duration, spawn_rate=float(args.users))
    with tempfile.TemporaryDirectory(prefix="lg-probe-") as out:
        runner.run(scenario, target, Path(out), options=RunOptions(on_progress=sample))
    if args.json is not None:
        args.json.write_text(json.dumps(samples, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
