"""The report's page as sections found by name: the registry, their order, the navigation, and
what a section reads from run.json's typed sections. No database: the recorded sample sweep."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from loadgen.report import build_report
from loadgen.report.data import Run
from loadgen.report.sections import SECTIONS
from loadgen.report.sections.headline import run_conditions

SAMPLE = Path(__file__).resolve().parents[2] / "notebooks" / "sample-quickstart"
SECTIONS_DIR = Path(importlib.import_module("loadgen.report.sections").__file__ or "").parent


def test_each_section_is_drawn_by_the_module_of_its_name() -> None:
    ids = [s.id for s in SECTIONS]
    assert len(set(ids)) == len(ids)
    for s in SECTIONS:
        assert (s.draw.__module__, s.draw.__name__) == (f"loadgen.report.sections.{s.id}", f"{s.id}_section")
    modules = {p.stem for p in SECTIONS_DIR.glob("*.py") if p.stem != "__init__"}
    assert modules == set(ids), "a module under loadgen/report/sections/ draws one section of SECTIONS, named as its id"


def test_a_sweep_page_has_its_sections_in_order_and_a_link_to_each() -> None:
    html = build_report([SAMPLE])
    drawn = re.findall(r'<section id="([^"]+)"', html)
    assert drawn == [s.id for s in SECTIONS if s.id in drawn]  # the registry's order
    assert {"headline", "warnings", "hotspot", "concurrency", "model", "metadata"} <= set(drawn)
    assert "cluster" not in drawn  # nothing to show (no DSQL counters): no section, and no link to it
    nav = re.search(r"<nav>(.*?)</nav>", html)
    assert nav is not None
    assert re.findall(r'href="#([^"]+)"', nav.group(1)) == drawn


def test_run_conditions_read_the_typed_sections() -> None:
    meta = {
        "cc": {"mode": "nowait", "how": "lock_timeout 1 ms"},
        "warmup": {"connections": 40, "seconds": 0.31},
        "concurrency": {"users": 40, "in_flight_mean": 27.2, "in_flight_share": 0.68},
        "lock_waits": {"longer_than_ms": 10, "count": 1234, "source": "server log"},
        "scenario": {"rtt_ms": 2, "commit_ms": 18.0},
    }
    assert run_conditions(Run(path=Path("r"), meta=meta)) == [
        "concurrency control: cc nowait: lock_timeout 1 ms",
        "warm-up: 40 connections opened in 0.3 s before the measured period (not part of any figure here)",
        "in flight: 27.2 transactions on average against 40 users asked (68%)",
        "emulated latency: +2 ms per round trip (+ 0 ms mean jitter), +18 ms on COMMIT, client-side; attempt latencies include it",
        "row-lock waits longer than 10 ms: 1,234 (server log)",
    ]


def test_run_conditions_skip_what_a_section_does_not_hold() -> None:
    """An older run.json (no cc, no warm-up) or a partial section gives fewer lines, never a KeyError."""
    meta = {"concurrency": {"in_flight_mean": 3.0}, "cc": "occ", "warmup": None, "lock_waits": {"count": 7}}
    assert run_conditions(Run(path=Path("r"), meta=meta)) == ["row-lock waits: 7"]
    assert run_conditions(Run(path=Path("r"), meta={"lock_waits": {"count": "many"}})) == []
