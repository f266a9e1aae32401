"""One conflict rate: the same figure, under the same name, leading every output of a hot cell.

The conflict rate is attempts that failed on contention (40001 with or without OC000/OC001,
OC000/OC001, and on PostgreSQL 40P01 and 55P03) / attempts, computed once
(loadgen.results.metrics). A hot cell in cc nowait (the later writer fails at its statement,
55P03, and some transactions with 40001) fails mostly with 55P03: the kinds differ by more than 2x, so a view that
led with the 40001-only share would show a different number. To the printed precision
(two decimals of a percent) the same figure must lead the progress line, the summary,
the sweep's cell line and table, run.json, the --csv stats file, ``predict --json`` and
every section of the report, and the 40001-only share must appear nowhere as a rate.

The web UI runs its own test (a real ``loadgen ui`` and Chromium, in tests/ui/test_webui.py:
test_the_web_uis_cards_chart_and_last_second_lead_with_its_run_json): its cards, its
chart's data and Locust's "last second" row must lead with that test's run.json figure.
"""

from __future__ import annotations

import csv
import html
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from loadgen.cli.summary import format_summary
from loadgen.engine import sweep
from loadgen.engine.progress import PlainLines, progress_line
from loadgen.model.outcomes import CONTENTION
from loadgen.model.scenariofile import load_text
from loadgen.results.export import write_csv
from loadgen.results.metrics import CONFLICT_RATE
from loadgen.targets.base import EmbeddedTarget

pytestmark = pytest.mark.slow

HOT_CELL = """
name = "hot"
accounts = 10
users = 30
duration = "2s"
seed = 7
cc = "nowait"
"""


def _pct(v: float) -> str:
    return f"{v:.2%}"


def _first_pct(text: str) -> str:
    m = re.search(r"(\d+\.\d\d)%", text)
    assert m, text
    return m.group(0)


class _Capture(PlainLines):
    """Progress as plain lines (what a log shows), keeping the last environment to draw the final line from."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        super().__init__(self.lines.append, every_s=1.0)
        self.env: Any = None

    def tick(self, elapsed_s: float, env: Any) -> None:
        self.env = env
        super().tick(elapsed_s, env)


def test_one_figure_leads_every_output_of_a_hot_cell(target: EmbeddedTarget, tmp_path: Path) -> None:
    sf = load_text(HOT_CELL, "hot.toml")
    view = _Capture()
    result = sweep.run_file(sf, target, tmp_path / "runs", progress=view, command_line=["loadgen", "run", "hot.toml"])
    (run,) = result.results
    doc = json.loads((run.run_dir / "run.json").read_text())
    rate = doc["summary"]["conflict_rate"]
    shown = _pct(rate)

    # The definition, from the records themselves; the kinds differ by more than 2x.
    attempts = pq.read_table(run.run_dir / "attempts.parquet").to_pandas()
    by_kind = attempts.loc[attempts["outcome"].isin(CONTENTION), "outcome"].value_counts().to_dict()
    assert rate == pytest.approx(sum(by_kind.values()) / len(attempts))
    assert doc["summary"]["conflicts_by_kind"] == {k: by_kind[k] for k in sorted(by_kind)}
    kinds = sorted(by_kind.values())
    assert len(kinds) >= 2 and kinds[-1] > 2 * kinds[-2], by_kind
    only_40001 = _pct(by_kind.get("conflict", 0) / len(attempts))
    assert only_40001 != shown

    # run.json, and the format that says which rate it holds.
    assert doc["format"] == 2 and "contention_rate" not in doc["summary"]

    # The progress line (its tally brought up to the end), the cell's line and the summary: the rate first.
    line = progress_line(0.0, view.env)
    assert _first_pct(line) == shown and line.split()[1:3] == CONFLICT_RATE.split(), line
    assert view.lines and all(CONFLICT_RATE in ln for ln in view.lines)
    summary = format_summary(run)
    first_figure = next(ln for ln in summary.splitlines() if "%" in ln)
    assert first_figure.strip().startswith(CONFLICT_RATE) and _first_pct(first_figure) == shown, summary
    cell_line = sweep._cell_line(run.summary)
    assert cell_line.startswith(f"{CONFLICT_RATE} {shown}"), cell_line

    # The sweep's table (the same for a one-cell file): the cell's row leads with it.
    table = sweep.format_sweep(
        sweep.SweepResult(
            result.out_dir, True, [run], [{"label": "hot", "status": "done", "summary": doc["summary"], "scenario": doc["scenario"]}]
        )
    )
    row = next(ln for ln in table.splitlines() if ln.strip().startswith("1 "))
    assert _first_pct(row) == shown and CONFLICT_RATE in table.splitlines()[1], table

    # --csv's stats file.
    stats_csv = write_csv([run.run_dir], tmp_path / "lg")[0]
    (stats,) = list(csv.DictReader(stats_csv.read_text().splitlines()))
    assert float(stats["conflict_rate"]) == pytest.approx(rate) and "contention_rate" not in stats

    # loadgen predict --json: the run's own cell carries what was measured, under the same name.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadgen.cli",
            "predict",
            str(run.run_dir),
            "--accounts",
            "10",
            "--users",
            "30",
            "--json",
            "--attempts",
            "200",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (cell,) = json.loads(proc.stdout)
    assert cell["measured"]["conflict_rate"] == rate and "conflict_rate" in cell

    # The report: every section that shows a rate leads with this one, and the 40001-only share is nowhere.
    page = (run.run_dir / "report.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<svg.*?</svg>", " ", page, flags=re.S)))
    assert "contention rate" not in text and only_40001 not in text
    for sid in ("headline", "hotspot", "model", "whatif", "latency"):
        body = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
        assert body, sid
        table_text = html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<svg.*?</svg>", " ", body.group(1), flags=re.S)))
        assert shown in table_text, sid
    headline = re.search(r'<section id="headline">(.*?)</section>', page, re.S)
    assert headline and _first_pct(html.unescape(re.sub(r"<[^>]+>", " ", headline.group(1)))) == shown
    assert re.search(rf'<div class="v">{re.escape(shown)}</div><div class="k">{CONFLICT_RATE}</div>', page)
    # The hot-spot chart's data (its table) and ratio: the cell against the published figure on the same definition.
    hot = re.search(r'<section id="hotspot">(.*?)</section>', page, re.S)
    assert hot and f"<td>{shown}</td>" in hot.group(1)
    # Hot keys and the over-time chart count every contention failure (the same outcomes) as conflicts.
    assert "conflicts/s (40001, 55P03, 40P01)" in page

    # --compare: the sentence and the pooled table lead with the same figure.
    out = tmp_path / "compare.html"
    proc = subprocess.run(
        [sys.executable, "-m", "loadgen.cli", "report", str(run.run_dir), str(run.run_dir), "--compare", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    compared = html.unescape(out.read_text())
    assert f"The conflict rate is the same ({shown})" in compared and only_40001 not in compared
