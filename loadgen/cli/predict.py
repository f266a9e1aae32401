"""``loadgen predict DIR``: what-if cells simulated from one measured run (loadgen.report.whatif).

Nothing here imports pandas at module level: it imports ssl, and ``loadgen run``
needs Locust to patch ssl first (the CLI builds every subcommand's parser).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadgen.errors import ConfigError
from loadgen.model.occsim import DEFAULT_ATTEMPTS

if TYPE_CHECKING:
    from loadgen.report.whatif import Prediction, SimInputs  # lazy: the report's modules (pandas) load when predicting only

__all__ = ["add_command", "cmd_predict", "parse_list", "format_predictions"]


def add_command(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "predict",
        help="simulate first-committer-wins OCC at other accounts x users from one measured run",
        description="Each simulated attempt takes a duration drawn from the run's committed attempts, "
        "keys from its key distribution and its retry policy; conflicts are decided at COMMIT, as Aurora DSQL does.",
    )
    p.add_argument("run_dir", type=Path, metavar="DIR", help="a run directory (attempts.parquet and run.json)")
    p.add_argument("--accounts", required=True, metavar="LIST", help="accounts per cell, comma-separated (e.g. 100,1000,10000)")
    p.add_argument("--users", required=True, metavar="LIST", help="concurrent users per cell, comma-separated (e.g. 10,100)")
    p.add_argument(
        "--rtt-ms", type=float, metavar="MS", help="each round trip takes MS instead of what the run emulated (a remote database)"
    )
    p.add_argument("--attempts", type=int, default=DEFAULT_ATTEMPTS, help=f"attempts simulated per cell (default {DEFAULT_ATTEMPTS:,})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0): the same inputs give the same output")
    p.add_argument("--json", action="store_true", help="print a JSON list of cells instead of a table")


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
    from loadgen.results.metrics import CONFLICT_RATE, percent  # lazy: pandas, as above

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
    # Here, not at the top: pandas imports ssl, which Locust must patch first in `loadgen run`.
    from loadgen.report.data import load_run  # lazy: the report's modules (pandas) load when predicting only
    from loadgen.report.whatif import inputs_from_run, predict_grid  # lazy: the report's modules (pandas) load when predicting only

    accounts = parse_list(args.accounts, "accounts")
    users = parse_list(args.users, "users")
    if args.attempts < 100:
        raise ConfigError(f"--attempts must be at least 100, got {args.attempts}")
    if args.rtt_ms is not None and not args.rtt_ms >= 0:
        raise ConfigError(f"--rtt-ms must not be negative, got {args.rtt_ms:g}")
    run = load_run(args.run_dir)
    inputs = inputs_from_run(run)
    cells = predict_grid(inputs, accounts, users, rtt_ms=args.rtt_ms, attempts=args.attempts, seed=args.seed)
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
