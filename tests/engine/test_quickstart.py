"""The quickstart's baseline is the talk, and a cell the machine cannot hold says so. Real runs."""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from loadgen.engine import sweep
from loadgen.model.baseline import TALK_CONDITIONS, TALK_RETRY_CONFLICT_RATE, axis, is_talk_baseline
from loadgen.model.scenariofile import load, load_text
from loadgen.targets.base import EmbeddedTarget

pytestmark = pytest.mark.slow


def test_the_quickstart_has_the_talk_as_baseline_and_concurrency_as_a_second_axis() -> None:
    sf = load("quickstart")
    axes = [axis(c.scenario.to_dict()) for c in sf.cells]
    assert axes.count("baseline") == 1 and "hot spots" in axes and "concurrency" in axes
    hot = [c.scenario for c in sf.cells if axis(c.scenario.to_dict()) in ("baseline", "hot spots")]
    # The hot-spot cells vary the accounts under the same load.
    assert len({s.accounts for s in hot}) == len(hot) and len({(s.load, s.arrival_rate, s.commit_ms, s.users) for s in hot}) == 1
    closed = [c.scenario for c in sf.cells if axis(c.scenario.to_dict()) == "concurrency"]
    assert {s.load for s in closed} == {"closed"} and max(s.users for s in closed) == 1000
    assert sum(c.scenario.duration_s for c in sf.cells) <= 60  # within 2 minutes on 2 cores, seeding and reports included


def test_the_quickstarts_baseline_cell_replays_the_talk(target: EmbeddedTarget, tmp_path: Path) -> None:
    sf = load("quickstart")
    (cell,) = [c for c in sf.cells if is_talk_baseline(c.scenario.to_dict())]
    result = sweep.run_file(replace(sf, cells=(replace(cell, index=0),), sweep_keys=()), target, tmp_path)
    (run,) = result.results
    doc = json.loads((run.run_dir / "run.json").read_text())
    rate = doc["summary"]["conflict_rate"]
    page = (run.run_dir / "report.html").read_text()
    # The report states the baseline's conditions and shows the published figures beside the measured one.
    hotspot = re.search(r'<section id="hotspot">(.*?)</section>', page, re.S)
    assert hotspot and TALK_CONDITIONS in html.unescape(hotspot.group(1))
    assert f"<td>{TALK_RETRY_CONFLICT_RATE:.2%}</td>" in hotspot.group(1) and f"<td>{rate:.2%}</td>" in hotspot.group(1)
    reference = re.search(r'<section id="reference">(.*?)</section>', page, re.S)
    assert reference and "your baseline cell" in reference.group(1) and "6.85%" in reference.group(1)
    busy = doc["machine"].get("host_cpu_busy")
    if busy is not None and busy >= 0.95:
        # A saturated machine measures itself: the run must say so, and the figure is not the talk's.
        assert any("machine was saturated" in w for w in doc["warnings"]), doc["warnings"]
        pytest.skip(f"the machine was saturated ({busy:.0%} busy, load {doc['machine'].get('load_average')}): measured {rate:.2%}")
    assert abs(rate - TALK_RETRY_CONFLICT_RATE) <= 0.015, (rate, doc["summary"]["attempt_latency_ms"], doc["machine"])


def test_a_thousand_closed_loop_users_on_a_small_machine_are_warned_about(target: EmbeddedTarget, tmp_path: Path) -> None:
    sf = load_text('name = "crowd"\naccounts = 1000\nusers = 1000\nduration = "3s"\ncommit_ms = 18.0\n', "crowd.toml")
    result = sweep.run_file(sf, target, tmp_path)
    (run,) = result.results
    doc = json.loads((run.run_dir / "run.json").read_text())
    # Which of the three shows first depends on the machine's speed: all CPUs busy, attempts
    # queued far above their lightly loaded time, or users left waiting outside the database.
    signs = ("machine was saturated", "attempts queued", "could not keep every user busy")
    why = [w for w in doc["warnings"] if any(s in w for s in signs)]
    assert why, (doc["warnings"], doc["machine"], doc["summary"]["attempt_latency_ms"])
    # With the reason, in the report's warnings too, and the model and what-if say they do not apply.
    page = (run.run_dir / "report.html").read_text()
    for w in why:
        assert w in html.unescape(page)
    model = re.search(r'<section id="model">(.*?)</section>', page, re.S)
    assert model and "does not apply" in model.group(1)
    whatif = re.search(r'<section id="whatif">(.*?)</section>', page, re.S)
    assert whatif and "Does not apply" in whatif.group(1)
