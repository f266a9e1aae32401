"""The command line's start-up: ``python -m loadgen.cli --help`` and ``loadgen report --help``, wall and CPU time.

    PYTHONPATH=. python benchmarks/cli_startup.py [--rounds 15]
    PYTHONPATH=. python benchmarks/cli_startup.py --baseline /path/to/other/checkout --rounds 15

Each process is started as a user starts the command (a new interpreter, the checkout on
PYTHONPATH) and timed from outside. ``--baseline DIR`` alternates the other checkout's
runs with this one's, the order flipped every round, so both meet the same load on a
shared machine. Prints the median and the quartiles of each, with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = (["--help"], ["report", "--help"])


def one(tree: Path, argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of one ``python -m loadgen.cli ARGV`` with ``tree`` on PYTHONPATH."""
    before, t0 = os.times(), time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "loadgen.cli", *argv],
        env=dict(os.environ, PYTHONPATH=str(tree)),
        cwd="/",
        stdout=subprocess.DEVNULL,
        check=True,
    )
    wall, after = time.perf_counter() - t0, os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu


def _quartiles(values: list[float]) -> str:
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return f"{q2:.3f} s ({q1:.3f}-{q3:.3f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--baseline", type=Path, help="another checkout, run alternately with this one")
    args = p.parse_args()
    trees = {"this": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    loads = [os.getloadavg()[0]]
    for r in range(args.rounds):
        order = list(trees.items()) if r % 2 == 0 else list(reversed(trees.items()))
        for argv in COMMANDS:
            for name, tree in order:
                times.setdefault((name, " ".join(argv)), []).append(one(tree, argv))
        loads.append(os.getloadavg()[0])
    print(f"{args.rounds} rounds; 1-minute load average {min(loads):.2f}-{max(loads):.2f}")
    for (name, argv), runs in times.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"  {name:8} loadgen {argv:14} wall {_quartiles(walls)}  cpu {_quartiles(cpus)}")


if __name__ == "__main__":
    main()
