"""CSV files of runs, as Locust's ``--csv PREFIX`` writes them: ``PREFIX_stats.csv`` and friends.

- ``PREFIX_stats.csv``: one row per run (a sweep: per cell), the run.json summary's
  numbers (computed once, by loadgen.results.metrics) with the cell's settings;
- ``PREFIX_failures.csv``: attempts that did not commit, counted by outcome and SQLSTATE,
  as Locust counts failures by error;
- ``PREFIX_attempts.csv``: every attempt, the columns of attempts.parquet.

Read from the run directories, so they say exactly what the run's files say.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from loadgen.model.outcomes import COMMITTED
from loadgen.results.records import RunRecord
from loadgen.results.rundir import RunDirError, read_attempts, read_run

__all__ = ["write_csv", "STATS_COLUMNS"]

#: PREFIX_stats.csv's columns after run_id and cell: settings, then the summary's numbers.
STATS_COLUMNS = (
    "accounts",
    "users",
    "duration_s",
    "distribution",
    "attempts",
    "transactions",
    "commits",
    "conflicts",
    "conflict_rate",
    "retries_per_commit",
    "retried_share",
    "max_attempts",
    "failed_transactions",
    "throughput_commits_per_s",
    "attempt_p50_ms",
    "attempt_p95_ms",
    "attempt_p99_ms",
    "transaction_p50_ms",
    "transaction_p95_ms",
    "transaction_p99_ms",
    "invariants_hold",
    "completed",
)


def _stats_row(record: RunRecord) -> dict[str, Any]:
    sections, sc = record.sections, record.scenario
    s = sections.summary.to_dict()
    a, t = s["attempt_latency_ms"], s["transaction_latency_ms"]
    row = {k: sc.get(k) for k in ("accounts", "users", "duration_s", "distribution")}
    row |= {k: s.get(k) for k in STATS_COLUMNS if k in s}
    row |= {f"attempt_{p}_ms": a.get(p) for p in ("p50", "p95", "p99")}
    row |= {f"transaction_{p}_ms": t.get(p) for p in ("p50", "p95", "p99")}
    row |= {"invariants_hold": record.invariants_hold, "completed": record.completed}
    return {"run_id": record.run_id, "cell": (sections.cell or {}).get("label", ""), **row}


def _record(run_dir: Path) -> RunRecord:
    record = read_run(run_dir)
    if record is None:
        raise RunDirError(f"{run_dir}: no run.json to export")
    return record


def write_csv(run_dirs: list[Path], prefix: str | Path) -> list[Path]:
    """Write the three files for these runs (in order); return their paths."""
    prefix = str(prefix)
    records = [_record(d) for d in run_dirs]
    paths = [Path(f"{prefix}_{name}.csv") for name in ("stats", "failures", "attempts")]
    paths[0].parent.mkdir(parents=True, exist_ok=True)

    with _atomic(paths[0]) as f:
        w = csv.DictWriter(f, fieldnames=["run_id", "cell", *STATS_COLUMNS], lineterminator="\n")
        w.writeheader()
        for record in records:
            w.writerow(_stats_row(record))

    tables = [read_attempts(d) for d in run_dirs]
    attempts = pa.concat_tables(tables, promote_options="default") if tables else None
    with _atomic(paths[1]) as f:
        fw = csv.writer(f, lineterminator="\n")
        fw.writerow(["run_id", "outcome", "sqlstate", "occurrences"])
        for table in tables:
            failed = table.filter(pc.invert(pc.is_in(table["outcome"], value_set=pa.array(sorted(COMMITTED)))))
            counts = failed.group_by(["run_id", "outcome", "sqlstate"], use_threads=False).aggregate([("attempt", "count")])
            for r in sorted(counts.to_pylist(), key=lambda r: -r["attempt_count"]):
                fw.writerow([r["run_id"], r["outcome"], r["sqlstate"] or "", r["attempt_count"]])

    tmp = paths[2].with_name(paths[2].name + ".tmp")
    if attempts is not None:
        pacsv.write_csv(attempts, tmp)
    else:
        tmp.write_text("")
    tmp.replace(paths[2])
    return paths


class _atomic:
    """A text file written under a temporary name, renamed into place when closed cleanly."""

    def __init__(self, path: Path) -> None:
        self.path, self.tmp = path, path.with_name(path.name + ".tmp")

    def __enter__(self) -> Any:
        self.f = self.tmp.open("w", newline="")
        return self.f

    def __exit__(self, kind: Any, *_: Any) -> None:
        self.f.close()
        if kind is None:
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)
