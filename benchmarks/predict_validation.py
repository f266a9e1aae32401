"""Validate ``loadgen predict``'s OCC simulation: the published DSQL points, and one measured cell from another.

    PYTHONPATH=. python benchmarks/predict_validation.py published
    PYTHONPATH=. LOADGEN_HOME=/tmp/lg-bench python benchmarks/predict_validation.py cells [--run-args "..."]
    PYTHONPATH=. python benchmarks/predict_validation.py cells --source DIR --check DIR   # runs already made

``published``: each of the talk's rows simulated from its own rate, mean duration
and accounts (open loop: Poisson arrivals at the published calls/s, no limit in
flight, as Lambda dispatched them), against the published conflict figures.
Durations: the published mean, either constant or as a shifted exponential from
the published minimum (9 ms), since the talk gives only min, mean and max.

``cells``: two measured runs on the embedded PostgreSQL in occ mode; the
simulation is fed the first (source) and predicts the second (check), which
differs in accounts and users. Measured contention = attempts failed by
contention / attempts. The load average is printed with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadgen.model.keys import Uniform  # noqa: E402
from loadgen.model.occsim import Load, Sampled, simulate  # noqa: E402
from loadgen.model.retry import RetryPolicy  # noqa: E402
from loadgen.report import analyse_runs, load_study  # noqa: E402
from loadgen.report.data import load_run  # noqa: E402
from loadgen.report.reference import TALK_LARGE, TALK_NO_RETRY, TALK_RETRY  # noqa: E402
from loadgen.report.whatif import inputs_from_run, predict, summarize_simulation  # noqa: E402

UNBOUNDED = RetryPolicy(max_attempts=1_000_000, deadline_s=1e9)


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def published(attempts: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    rng = np.random.default_rng(seed)
    for ref, policy in ((TALK_NO_RETRY, RetryPolicy(max_attempts=1)), (TALK_RETRY, UNBOUNDED), (TALK_LARGE, UNBOUNDED)):
        for shape in ("constant", "shifted-exponential"):
            if shape == "constant":
                window = np.array([ref.mean_ms])
            else:
                window = 9.0 + rng.exponential(ref.mean_ms - 9.0, 200_000)
            t = time.process_time()
            sim = simulate(
                Uniform(ref.accounts),
                Sampled(np.zeros_like(window), window, seed=seed),
                Load("open", 0, arrival_rate=ref.calls_per_s),
                policy,
                attempts=attempts,
                seed=seed,
            )
            p = summarize_simulation(sim, ref.accounts, 0, float(window.mean()), 0.0)
            rows.append(
                {
                    "reference": ref.label,
                    "durations": shape,
                    "rate_per_s": ref.calls_per_s,
                    "mean_ms": ref.mean_ms,
                    "accounts": ref.accounts,
                    "published_conflict_rate": ref.conflict_rate,
                    "published_retried_share": ref.retried_share,
                    "published_max_retries": ref.max_retries,
                    "simulated_conflict_rate": p.conflict_rate,
                    "simulated_retried_share": p.retried_share,
                    "simulated_max_retries": p.max_attempts - 1,
                    "attempts": p.attempts,
                    "cpu_s": round(time.process_time() - t, 2),
                }
            )
    return rows


def _run(accounts: int, users: int, out: Path, extra: list[str]) -> Path:
    before = set(out.glob("run-*")) if out.exists() else set()
    cmd = [sys.executable, "-m", "loadgen.cli", "run", "--accounts", str(accounts), "--users", str(users), "--out", str(out), "-q", *extra]
    print(f"$ {shlex.join(cmd)}   (load {_load()})", flush=True)
    subprocess.run(cmd, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    made = sorted(set(out.glob("run-*")) - before)
    if not made:
        raise SystemExit("the run wrote no run directory")
    return made[-1]


def _measured(run_dir: Path) -> dict[str, Any]:
    cell = analyse_runs(load_study(run_dir).runs)[0]
    h = cell.headline
    return {
        "run": str(run_dir),
        "accounts": cell.accounts,
        "users": cell.users,
        "conflict_rate": h["conflict_rate"],
        "retries_per_commit": h["retries_per_commit"],
        "throughput_commits_per_s": h["throughput_commits_per_s"],
        "mean_attempt_ms": h["mean_attempt_ms"],
        "client": cell.run.meta.get("client"),
    }


def cells(args: argparse.Namespace) -> dict[str, Any]:
    extra = shlex.split(args.run_args)
    out = Path(args.out)
    load_before = _load()
    source = Path(args.source) if args.source else _run(args.source_accounts, args.source_users, out, extra)
    load_source = _load()
    check = Path(args.check) if args.check else _run(args.check_accounts, args.check_users, out, extra)
    load_check = _load()
    m_source, m_check = _measured(source), _measured(check)
    inputs = inputs_from_run(load_run(source))
    own = predict(inputs, m_source["accounts"], m_source["users"], attempts=args.attempts, seed=args.seed)
    other = predict(inputs, m_check["accounts"], m_check["users"], attempts=args.attempts, seed=args.seed)
    return {
        "load_before": load_before,
        "load_after_source": load_source,
        "load_after_check": load_check,
        "run_args": args.run_args,
        "source": m_source,
        "check": m_check,
        "simulated_source": own.to_dict(),
        "predicted_check": other.to_dict(),
        "ratio_source": (m_source["conflict_rate"] or 0) / own.conflict_rate if own.conflict_rate else None,
        "ratio_check": (m_check["conflict_rate"] or 0) / other.conflict_rate if other.conflict_rate else None,
        "window_source": inputs.window_source,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("published")
    p.add_argument("--attempts", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    c = sub.add_parser("cells")
    c.add_argument("--source", help="an existing run directory to predict from")
    c.add_argument("--check", help="an existing run directory to predict")
    c.add_argument("--source-accounts", type=int, default=1000)
    c.add_argument("--source-users", type=int, default=20)
    c.add_argument("--check-accounts", type=int, default=200)
    c.add_argument("--check-users", type=int, default=40)
    c.add_argument("--run-args", default="--duration 20 --lock-timeout-ms 1", help="more `loadgen run` options for both runs")
    c.add_argument("--out", default="/tmp/lg-predict-validation")
    c.add_argument("--attempts", type=int, default=50_000)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--json-out", help="also write the result here")
    args = ap.parse_args()
    result: Any = published(args.attempts, args.seed) if args.what == "published" else cells(args)
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if getattr(args, "json_out", None):
        Path(args.json_out).write_text(text + "\n")


if __name__ == "__main__":
    main()
