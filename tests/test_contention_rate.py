"""One contention rate: the same figure, under the same name, in every view of one run.

Attempts failed by contention (40001 with OC000/OC001, 40P01, 55P03) / attempts: the
progress line, the terminal summary, run.json, the live UI's counters and the report
must all say the same number for the same run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from loadgen.cli.summary import format_summary
from loadgen.engine import runner
from loadgen.engine.live import ContentionCounters, view
from loadgen.engine.progress import progress_line
from loadgen.model.outcomes import CONTENTION
from loadgen.model.scenario import Scenario
from loadgen.report import cells as report_cells
from loadgen.report import data as report_data
from loadgen.targets.base import EmbeddedTarget


def _pct(v: float) -> str:
    return f"{v:.2%}"


def test_the_contention_rate_agrees_across_every_view(target: EmbeddedTarget, tmp_path: Path) -> None:
    envs: list[Any] = []
    result = runner.run(
        Scenario(accounts=10, users=30, spawn_rate=30, duration_s=2, seed=7, cc="nowait"),  # nowait: 55P03 and 40001 both occur
        target,
        tmp_path,
        runner.RunOptions(on_progress=lambda t, env: envs.append(env)),
    )
    summary = result.summary
    rate = summary["contention_rate"]
    attempts = pq.read_table(result.run_dir / "attempts.parquet").to_pandas()
    by_kind = attempts.loc[attempts["outcome"].isin(CONTENTION), "outcome"].value_counts().to_dict()
    # The definition, from the records themselves; hot data: both OCC kinds occur.
    assert rate == pytest.approx(sum(by_kind.values()) / len(attempts))
    assert summary["contention_by_kind"] == {k: by_kind[k] for k in sorted(by_kind)}
    assert {"lock_timeout", "conflict"} <= set(by_kind)

    # run.json: the same number and breakdown.
    doc = json.loads((result.run_dir / "run.json").read_text())
    assert doc["summary"]["contention_rate"] == rate
    assert doc["summary"]["contention_by_kind"] == summary["contention_by_kind"]

    # The terminal summary and the progress line (its tally, brought up to the end of the run).
    text = format_summary(result)
    assert f"contention rate {_pct(rate)} of attempts" in text
    assert envs, "no progress line was asked for"
    line = progress_line(0.0, envs[-1])
    assert f"contention rate {_pct(rate)}" in line
    for kind, n in by_kind.items():
        assert f"{kind} {n}" in line

    # The live UI's counters, fed the same attempts as the recorder feeds them.
    counters = ContentionCounters()
    for row in attempts.itertuples():
        counters.add_attempt(row.outcome, row.sqlstate, row.attempt, row.payer, row.payee)
    assert view(counters.snapshot())["contention_rate"] == pytest.approx(rate)

    # The report: its analysis and its page.
    cell = report_cells.analyse_run(report_data.load_run(result.run_dir))
    assert cell.headline["contention_rate"] == pytest.approx(rate)
    page = (result.run_dir / "report.html").read_text()
    assert re.search(rf">{re.escape(_pct(rate))}<", page)
    assert "contention rate" in page and "by kind" in page
