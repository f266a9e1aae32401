"""Soak: one long `loadgen run` at full speed, its resident memory sampled every 10 s.

    python benchmarks/soak.py [--duration 10m] [--users 16] [--accounts 1000] [--out /tmp/loadgen-soak]

The run is the real command line in a child process (embedded target). Every
``--every`` seconds the child's resident set (VmRSS from /proc), the attempts that
reached disk so far (the streamed part files' row counts) and the machine's load
average are sampled. At the end the figures the issue asks for are printed: RSS at
the first minute and at the end of the load phase, growth between them, peak, and
the run's throughput, with the samples as JSON in ``--out/soak.json``.

The machine may be shared: the load average is printed beside every sample,
because a busy machine slows the run (fewer attempts) but should not change
whether memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

PARTS = "attempts.parts"


def rss_mb(pid: int, field: str = "VmRSS") -> float | None:
    """The process's resident set now (VmRSS), or its high-water mark so far (VmHWM)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def on_disk(out: Path) -> int:
    """Attempts in the streamed parts so far (a part may be renamed away mid-count: skip it)."""
    n = 0
    for path in out.glob(f"run-*/{PARTS}/*.parquet"):
        try:
            n += pq.read_metadata(path).num_rows
        except OSError:
            continue
    return n


def parse_seconds(text: str) -> float:
    text = text.strip()
    unit = {"s": 1, "m": 60, "h": 3600}.get(text[-1], None)
    return float(text[:-1]) * unit if unit else float(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", default="10m")
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--accounts", type=int, default=1000)
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--out", type=Path, default=Path("/tmp/loadgen-soak"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    duration = parse_seconds(args.duration)
    cmd = [
        sys.executable, "-m", "loadgen.cli", "run",
        "--accounts", str(args.accounts), "--users", str(args.users), "--duration", str(duration),
        "--out", str(args.out), "-q",
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = []
    print(f"{'t_s':>6} {'rss_mb':>8} {'on_disk':>10} {'load1':>6}", flush=True)
    while proc.poll() is None:
        time.sleep(args.every)
        rss = rss_mb(proc.pid)
        if rss is None:
            break
        hwm = rss_mb(proc.pid, "VmHWM") or rss
        s = {
            "t_s": round(time.monotonic() - t0, 1),
            "rss_mb": round(rss, 1),
            "hwm_mb": round(hwm, 1),
            "on_disk": on_disk(args.out),
            "load1": os.getloadavg()[0],
        }
        samples.append(s)
        print(f"{s['t_s']:>6.0f} {s['rss_mb']:>8.1f} {s['on_disk']:>10,} {s['load1']:>6.2f}", flush=True)
    out, err = proc.communicate()
    run_dirs = sorted(args.out.glob("run-*"), key=lambda p: p.stat().st_mtime)
    doc = json.loads((run_dirs[-1] / "run.json").read_text()) if run_dirs else {}
    # The load phase: from the first minute to the last sample before the run's own end (set-up and finish excluded).
    load = [s for s in samples if s["t_s"] <= duration + 5]
    first_minute = next((s for s in load if s["t_s"] >= 60), load[0] if load else None)
    last = load[-1] if load else None
    summary = {
        "command": "loadgen " + " ".join(cmd[3:]),
        "exit_code": proc.returncode,
        "rss_first_minute_mb": first_minute and first_minute["rss_mb"],
        "rss_end_mb": last and last["rss_mb"],
        "growth_mb": round(last["rss_mb"] - first_minute["rss_mb"], 1) if first_minute and last else None,
        "rss_peak_mb": max((s["rss_mb"] for s in samples), default=None),
        # The kernel's high-water mark, read at each sample: catches the finish's peak between samples.
        "rss_high_water_mb": max((s["hwm_mb"] for s in samples), default=None),
        "attempts": doc.get("summary", {}).get("attempts"),
        "attempts_per_s": round(doc["summary"]["attempts"] / duration, 1) if doc.get("summary") else None,
        "commits_per_s": doc.get("summary", {}).get("throughput_commits_per_s"),
        "invariants_hold": doc.get("invariants_hold"),
        # After the last attempt: results, invariants, report (run.json's fixed cost, teardown).
        "finish_s": ((doc.get("client") or {}).get("fixed_cost_s") or {}).get("teardown_s"),
        # Locust counted every attempt as it happened; attempts.parquet must hold each one.
        "attempts_lost": (doc.get("locust", {}).get("attempts", 0) - doc.get("summary", {}).get("attempts", 0)) if doc else None,
        "load_average_mean": round(sum(s["load1"] for s in samples) / len(samples), 2) if samples else None,
        "cpus": os.cpu_count(),
        "run_dir": str(run_dirs[-1]) if run_dirs else None,
    }
    (args.out / "soak.json").write_text(json.dumps({"summary": summary, "samples": samples}, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    if proc.returncode != 0:
        print(err[-2000:], file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
