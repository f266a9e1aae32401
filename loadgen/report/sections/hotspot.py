"""Hot spots: the conflict rate against the number of accounts at the talk's load, as ratios to the baseline."""

from __future__ import annotations

from loadgen.model.baseline import TALK_CONDITIONS
from loadgen.report import analysis as A
from loadgen.report import charts
from loadgen.report.cells import Cell, cells_frame, find_baseline
from loadgen.report.html import chart, esc, num, ratio, section, table
from loadgen.report.reference import (
    SOURCE,
    TALK_NO_RETRY,
    TALK_RETRY,
)
from loadgen.results.metrics import CONFLICT_RATE, percent

__all__ = ["hotspot_section"]


def hotspot_section(cells: list[Cell], p: str) -> str:
    """The first chart: each cell as a ratio to the baseline cell, or to the published figure when there is none."""
    base = find_baseline(cells)
    frame = cells_frame(cells, base)
    published = (
        f"The published figures on the same definition (every failed attempt / attempts): {percent(TALK_RETRY.conflict_rate)} with "
        f"the talk's immediate retry (735 conflicts / 10,735 attempts), {percent(TALK_NO_RETRY.conflict_rate)} without retry "
        f"(656 / 10,000 calls); {esc(SOURCE)}."
    )
    if base is not None:
        note = (
            f"<p>{esc(TALK_CONDITIONS)} It is marked with a star, every cell is shown as a ratio to it "
            f"({CONFLICT_RATE} {percent(base.headline['conflict_rate'])} measured here), and the talk's published figure is "
            f'drawn beside it as a red diamond.</p><p class="muted">{published}</p>'
        )
        ref = "baseline"
    else:
        note = (
            f'<p class="note">These runs hold no cell with the talk\'s conditions (1,000 accounts, 908 calls/s in an open '
            f"loop, immediate retry), so ratios are to the <b>published</b> figure, {CONFLICT_RATE} "
            f"{percent(TALK_RETRY.conflict_rate)}, drawn as a red diamond. A closed loop of 1,000 users is not that baseline "
            "(about 1,000 transactions in flight where the talk had about 18). Run the quickstart (or talk-replay) on "
            f'your target to compare like with like.</p><p class="muted">{published}</p>'
        )
        ref = "published"
    rows = [
        [
            esc(r.cell),
            esc(r.load),
            percent(r.conflict_rate),
            ratio(r.conflict_ratio),
            num(r.attempts),
            num(r.attempts_per_commit, 4),
            ratio(r.apc_ratio),
            num(r.throughput_commits_per_s, 1),
            ratio(r.throughput_ratio),
            f'<span class="bad">{esc(r.caveat)}</span>' if r.caveat else "",
        ]
        for r in frame.itertuples()
    ]
    classes = ["baseline" if b else "" for b in frame["baseline"]]
    rows.append(
        [
            "DSQL talk, immediate retry (published)",
            "908 calls/s, 1,000 parallel via Lambda",
            percent(TALK_RETRY.conflict_rate),
            ratio(A.ratio_to_baseline(TALK_RETRY.conflict_rate, base.headline["conflict_rate"] if base else TALK_RETRY.conflict_rate)),
            num(10_735),
            num(TALK_RETRY.attempts_per_commit, 4),
            "-",
            num(TALK_RETRY.calls_per_s, 1),
            "-",
            "published",
        ]
    )
    classes.append("muted")
    t = table(
        ["cell", "load", CONFLICT_RATE, f"vs {ref}", "attempts", "attempts/commit", f"vs {ref}", "commits/s", f"vs {ref}", "caveat"],
        rows,
        classes,
    )
    return section(f"{p}hotspot", f"Hot spots: {CONFLICT_RATE} against the number of accounts", note + chart(charts.hotspot(frame)) + t)
