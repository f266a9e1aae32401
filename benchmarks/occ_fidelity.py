"""Issue 20's figures for runs or sweeps: how a run's conflicts compare with first-committer-wins.

For each run directory under the given paths: accounts x users, contention rate,
retries per commit, most attempts for one transaction, median failed / committed
attempt latency, share of contention failures that are 40001 at COMMIT, share with
a winner inside their window, and ``loadgen predict`` on the run's own cell (the
first-committer-wins simulation from the run's measured durations) with the ratios
measured / predicted.

    PYTHONPATH=. python benchmarks/occ_fidelity.py RUN_OR_SWEEP_DIR... [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadgen.report.data import find_run_dirs, load_run  # noqa: E402
from loadgen.report.failures import COLUMNS, occ_fidelity  # noqa: E402
from loadgen.report.whatif import inputs_from_run, predict  # noqa: E402


def figures(run_dir: Path) -> dict[str, Any]:
    run = load_run(run_dir)
    doc = json.loads((run_dir / "run.json").read_text())
    s = doc["summary"]
    frame = run.attempts([c for c in COLUMNS if c != "failed_at"] + (["failed_at"] if _has_failed_at(run_dir) else []))
    fid = occ_fidelity(frame)
    p = predict(inputs_from_run(run), int(run.accounts or 0), int(run.users or 0))
    out = {
        "run": run_dir.name,
        "cc": doc.get("cc", {}).get("mode"),
        "accounts": run.accounts,
        "users": run.users,
        "attempts": s["attempts"],
        "conflict_rate": s.get("conflict_rate"),
        "retries_per_commit": s.get("retries_per_commit"),
        "max_attempts": s.get("max_attempts"),
        **fid.to_dict(),
        "predicted_conflict_rate": p.conflict_rate,
        "predicted_retries_per_commit": p.retries_per_commit,
        "predicted_max_attempts": p.max_attempts,
    }
    out["rate_ratio"] = _ratio(out["conflict_rate"], p.conflict_rate)
    out["rpc_ratio"] = _ratio(out["retries_per_commit"], p.retries_per_commit)
    return out


def _has_failed_at(run_dir: Path) -> bool:
    import pyarrow.parquet as pq

    return "failed_at" in pq.read_schema(run_dir / "attempts.parquet").names


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for path in args.paths:
        dirs, _ = find_run_dirs(path)
        rows.extend(figures(d) for d in dirs)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"{'cell':>12} {'cc':>7} {'contention':>10} {'rpc':>7} {'max':>4} {'fail/ok p50':>11} {'40001@commit':>12} "
        f"{'winner in':>9} {'pred rate':>9} {'pred rpc':>8} {'rate x':>6} {'rpc x':>6}"
    )
    for r in rows:
        print(
            f"{r['accounts']:>5}x{r['users']:<6} {r['cc'] or '-':>7} {_f(r['conflict_rate'], '.2%'):>10} "
            f"{_f(r['retries_per_commit'], '.3f'):>7} {r['max_attempts']:>4} "
            f"{_f(r['median_failed_ms'], '.1f')}/{_f(r['median_committed_ms'], '.1f'):<5} "
            f"{_f(r['at_commit_40001'], '.1%'):>12} {_f(r['with_winner_inside'], '.1%'):>9} "
            f"{_f(r['predicted_conflict_rate'], '.2%'):>9} {_f(r['predicted_retries_per_commit'], '.3f'):>8} "
            f"{_f(r['rate_ratio'], '.2f'):>6} {_f(r['rpc_ratio'], '.2f'):>6}"
        )


if __name__ == "__main__":
    main()
