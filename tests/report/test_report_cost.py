"""What writing a report leaves behind: the collector as it was, and no figure alive. No database."""

from __future__ import annotations

import gc

import pytest
from matplotlib.figure import Figure
from repo import REPO

from loadgen.report import build_report
from loadgen.results.client import collector_paused

SAMPLE = REPO / "notebooks" / "sample-quickstart"


def _figures_alive() -> int:
    return sum(isinstance(o, Figure) for o in gc.get_objects())


def test_collector_paused_restores_what_it_found() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause leaves the outer one paused
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # paused before: still paused after
    finally:
        gc.enable()


@pytest.mark.slow
def test_a_sweep_report_holds_no_figure_once_written() -> None:
    """Drawn with the collector paused (as `loadgen run` writes it), every figure is freed
    as soon as it is drawn: a sweep's report must not hold one figure per cell."""
    build_report([SAMPLE])  # fonts and caches loaded once
    gc.collect()
    before = _figures_alive()
    gc.disable()
    try:
        html = build_report([SAMPLE])
        assert html.count("<svg") >= 8  # four cells' details, hot spots, heatmap, model, latency
        assert _figures_alive() - before == 0  # no full collection asked for: freed as drawn
    finally:
        gc.enable()
