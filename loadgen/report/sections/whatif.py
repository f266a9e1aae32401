"""What if: predicted cells around one measured cell (loadgen.report.whatif)."""

from __future__ import annotations

from loadgen.report.cells import Cell
from loadgen.report.html import esc, num, section, table
from loadgen.report.modelfit import not_applicable
from loadgen.report.whatif import WhatIf
from loadgen.results.metrics import CONFLICT_RATE, percent

__all__ = ["whatif_section"]


def whatif_section(cells: list[Cell], p: str, w: WhatIf | None) -> str:
    """Predicted cells around one measured cell of ``cells`` (loadgen.report.whatif.whatif_for), with the check on its own cell."""
    if w is None:
        return ""
    src = w.source
    intro = (
        f"<p>What {esc(src.label)} would meet with other numbers of accounts and users, simulated: first-committer-wins "
        "OCC as Aurora DSQL decides it (a transaction fails at COMMIT when another committed one of its rows after its "
        "snapshot), each attempt's duration drawn from this run's committed attempts, keys from its key distribution, "
        "its retry policy and load model. The same as <code>loadgen predict "
        f"{esc(src.run.path)} --accounts LIST --users LIST</code>.</p>"
    )
    notes = "".join(f"<li>{esc(c)}</li>" for c in w.caveats)
    caveats = f'<div class="warnings"><ul>{notes}</ul></div>' if notes else ""
    why = not_applicable(src.run)
    if why:
        caveats = f'<p class="bad">Does not apply to {esc(src.label)}: {esc(why)}.</p>' + caveats
    if w.inputs is None or w.own is None:
        return section(f"{p}whatif", "What if: predicted cells", intro + caveats)
    h = src.headline
    check = table(
        ["this cell", CONFLICT_RATE, "retries/commit", "commits/s"],
        [
            ["measured", percent(h["conflict_rate"]), num(h["retries_per_commit"], 4), num(h["throughput_commits_per_s"], 0)],
            ["simulated", percent(w.own.conflict_rate), num(w.own.retries_per_commit, 4), num(w.own.throughput_commits_per_s, 0)],
        ],
    )
    rows = [
        [
            num(c.accounts),
            num(c.users),
            percent(c.conflict_rate),
            num(c.retries_per_commit, 4),
            num(c.throughput_commits_per_s, 0),
            percent(c.retried_share),
        ]
        for c in w.cells
    ]
    grid = table(
        ["accounts", "users", "conflict rate", "retries/commit", "commits/s", "retried"],
        rows,
        ["baseline" if (c.accounts, c.users) == (src.accounts, src.users) else "" for c in w.cells],
    )
    how = (
        f'<p class="muted">Durations: {esc(w.inputs.window_source)}. {w.own.attempts:,} simulated attempts per cell '
        "(about +-6% on a rate). It assumes attempt times do not change with load: true of a database that is not "
        "saturated or whose latency is mostly network (emulated with --rtt-ms); not of a saturated client or server.</p>"
    )
    return section(
        f"{p}whatif", "What if: predicted cells", intro + caveats + "<h3>Check: the simulation on this cell</h3>" + check + grid + how
    )
