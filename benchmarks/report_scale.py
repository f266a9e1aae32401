"""`loadgen report` over 10, 25 and 50 million attempts: wall time and peak memory, this checkout against another.

    PYTHONPATH=. python benchmarks/report_scale.py [--attempts 10000000 25000000 50000000]
        [--baseline /path/to/old/checkout] [--baseline-limit-gb 16] [--dir /tmp/loadgen-report-scale] [--keep]

Each run is synthesized as benchmarks/report_10m.py makes it (1,000 accounts, 7% conflicts,
36-character ids), then ``loadgen report`` runs in a child process, niced, as a user
would run it: this checkout's, and, with ``--baseline``, the other checkout's, alternately
(baseline first, then this one), so both see the same minutes of a shared machine. Each
child's own peak resident memory comes from wait4; the 1-minute load average is printed
before each. ``--baseline-limit-gb`` caps the baseline's address space, so that an old
reader that needs more memory than the machine can spare fails by itself instead of
pushing other people's processes out (it is printed as failed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from report_10m import synthesize  # noqa: E402


def report(checkout: Path, run_dir: Path, out: Path, limit_gb: float | None) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}

    def cap() -> None:
        os.nice(10)
        if limit_gb:
            limit = int(limit_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    load = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen.cli", "report", str(run_dir), "-o", str(out)],
        env=env,
        # Not the current directory: `python -m` puts it first on sys.path, ahead of PYTHONPATH,
        # and a checkout there would shadow the one asked for.
        cwd=run_dir.parent,
        preexec_fn=cap,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode(errors="replace").strip().splitlines() if proc.stderr else []
    code = os.waitstatus_to_exitcode(status)
    return {
        "checkout": str(checkout),
        "exit": code,
        "wall_s": round(wall, 1),
        "peak_mib": round(usage.ru_maxrss / 1024),
        "load_1min": round(load, 2),
        "error": err[-1] if code and err else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attempts", type=int, nargs="+", default=[10_000_000, 25_000_000, 50_000_000])
    ap.add_argument("--baseline", type=Path, help="another checkout to run alternately (before)")
    ap.add_argument("--baseline-limit-gb", type=float, default=None)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/loadgen-report-scale"))
    ap.add_argument("--keep", action="store_true", help="keep (and reuse) the synthesized runs")
    ap.add_argument("--json", type=Path, help="append the results here, one JSON object a line")
    args = ap.parse_args()
    here = Path(__file__).resolve().parent.parent
    for n in args.attempts:
        run_dir = args.dir / f"run-{n}"
        if not (run_dir / "attempts.parquet").is_file():
            shutil.rmtree(run_dir, ignore_errors=True)
            t = time.perf_counter()
            rows = synthesize(run_dir, n)
            print(f"synthesized {rows:,} attempts in {time.perf_counter() - t:.0f} s", flush=True)
        rows = None
        checkouts = ([(args.baseline, args.baseline_limit_gb, "before")] if args.baseline else []) + [(here, None, "after")]
        for checkout, limit, label in checkouts:
            r = report(checkout, run_dir, args.dir / f"report-{n}-{label}.html", limit)
            r.update(attempts=n, label=label, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
            print(json.dumps(r), flush=True)
            if args.json:
                with args.json.open("a") as f:
                    f.write(json.dumps(r) + "\n")
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
