"""``loadgen predict DIR``: what-if cells simulated from one measured run (loadgen.report.whatif).

Loaded only for this command (loadgen.cli.main): the report's modules, pandas and the simulator.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from loadgen.errors import ConfigError
from loadgen.model.occsim import DEFAULT_ATTEMPTS
from loadgen.report.data import load_run
from loadgen.report.whatif import Prediction, SimInputs, inputs_from_run, predict_grid
from loadgen.results.metrics import CONFLICT_RATE, percent

__all__ = ["cmd_predict", "parse_list", "format_predictions"]


def parse_list(text: str, what: str) -> list[int]:
    """``"10,100, 1000"`` -> [10, 100, 1000]; one-line errors for anything else."""
    out = []
    for part in text.split(","):
        part = part.strip().replace("_", "")
        if not part.isdigit() or int(part) < 1:
            raise ConfigError(f"--{what} takes positive whole numbers separated by commas, got {text!r}")
        out.append(int(part))
    return out


def format_predictions(inputs: SimInputs, cells: list[Prediction]) -> str:
    """The table ``loadgen predict`` prints, with what the simulation took from the run."""
    load = inputs.load
    how = {"closed": "closed loop", "open": f"open loop at {load.arrival_rate:g}/s, users = most in flight", "batches": "batches of users"}
    pol = inputs.policy
    lines = [
        f"predicted from run {inputs.run_id} ({inputs.accounts:,} accounts x {inputs.users:,} users, "
        f"{inputs.distribution} keys, {how[load.model]}):",
        f"  attempt durations: {inputs.window_source}",
        f"  retry: at most {pol.max_attempts} attempts, backoff {pol.backoff}; conflicts decided at COMMIT (first committer wins)",
        "",
        f"  {'accounts':>10} {'users':>7} {CONFLICT_RATE:>14} {'retries/commit':>15} {'commits/s':>10} {'retried':>8} {'max att':>8}",
    ]
    for c in cells:
        rpc = "-" if c.retries_per_commit is None else f"{c.retries_per_commit:.4f}"
        good = "-" if c.throughput_commits_per_s is None else f"{c.throughput_commits_per_s:,.0f}"
        lines.append(
            f"  {c.accounts:>10,} {c.users:>7,} {percent(c.conflict_rate):>14} {rpc:>15} {good:>10} {percent(c.retried_share):>8} {c.max_attempts:>8}"
        )
    lines.append(
        "  Assumes attempt durations do not change with load: not so on a saturated client or server, "
        "nor in locking mode (lock waits are in the durations)."
    )
    return "\n".join(lines)


def cmd_predict(args: argparse.Namespace) -> int:
    accounts = parse_list(args.accounts, "accounts")
    users = parse_list(args.users, "users")
    attempts = DEFAULT_ATTEMPTS if args.attempts is None else args.attempts
    if attempts < 100:
        raise ConfigError(f"--attempts must be at least 100, got {attempts}")
    if args.rtt_ms is not None and not args.rtt_ms >= 0:
        raise ConfigError(f"--rtt-ms must not be negative, got {args.rtt_ms:g}")
    run = load_run(args.run_dir)
    inputs = inputs_from_run(run)
    cells = predict_grid(inputs, accounts, users, rtt_ms=args.rtt_ms, attempts=attempts, seed=args.seed)
    if args.json:
        found = run.meta.get("summary")
        summary: dict[str, Any] = found if isinstance(found, dict) else {}
        docs = [c.to_dict() for c in cells]
        for doc in docs:  # the run's own cell: what was measured there, under the same name, beside the simulation
            if (doc["accounts"], doc["users"]) == (inputs.accounts, inputs.users):
                doc["measured"] = {"conflict_rate": summary.get("conflict_rate"), "run_id": inputs.run_id}
        print(json.dumps(docs, indent=2))
    else:
        print(format_predictions(inputs, cells))
    return 0
