"""Over time and hot keys: each cell's timeline, attempts per transaction, hot keys and faults."""

from __future__ import annotations

from loadgen.model.outcomes import Outcome
from loadgen.report import charts
from loadgen.report.cells import Cell
from loadgen.report.html import chart, esc, ms, num, section, table
from loadgen.results.metrics import percent

__all__ = ["detail_section"]


def detail_section(cells: list[Cell], p: str) -> str:
    """Per cell, folded (open for one cell or the baseline): the timeline chart, hot keys, attempts per transaction, faults."""
    parts = []
    for i, c in enumerate(cells):
        svg = charts.cell_detail(c.timeline, c.distribution, c.hot_keys, c.by_attempt, c.faults)
        keys = (
            table(
                ["account", "conflicts", "attempts touching it", "their conflict rate", "share of conflicts"],
                [
                    [f"#{int(r.account)}", num(r.conflicts), num(r.attempts), percent(r.conflict_rate), percent(r.share)]
                    for r in c.hot_keys.itertuples()
                ],
            )
            if len(c.hot_keys)
            else "<p>No conflicts.</p>"
        )
        dist = table(
            ["attempts", "transactions", "share", "of them committed"],
            [[int(r.attempts), num(r.transactions), percent(r.share, 3), num(r.committed)] for r in c.distribution.itertuples()],
        )
        by_attempt = table(
            ["attempt number", "attempts", "conflict rate", "p50 ms", "p95", "p99", "p99.9"],
            [
                [
                    esc(r["attempt"]),
                    num(r["attempts"]),
                    percent(r["conflict_rate"]),
                    ms(r["p50"]),
                    ms(r["p95"]),
                    ms(r["p99"]),
                    ms(r["p99.9"]),
                ]
                for r in c.by_attempt.to_dict("records")
            ],
        )
        faults = ""
        if c.faults:
            hit = c.headline.get("outcomes", {}).get(Outcome.CONNECTION_ERROR) if isinstance(c.headline.get("outcomes"), dict) else None
            faults = (
                "<div><h3>Faults injected</h3>"
                + table(
                    ["at (s)", "fault", "detail"],
                    [
                        [
                            num(f["t_s"], 1),
                            esc(f.get("kind")),
                            esc(", ".join(f"{k} {v}" for k, v in f.items() if k not in ("kind", "at", "at_s", "t_s"))),
                        ]
                        for f in c.faults
                    ],
                )
                + (f"<p>{num(hit)} attempts ended in connection errors.</p>" if hit else "")
                + "</div>"
            )
        inner = (
            chart(svg) + '<div style="display:flex;gap:28px;flex-wrap:wrap">'
            f"<div><h3>Hot keys</h3>{keys}</div><div><h3>Attempts per transaction</h3>{dist}</div>"
            f"<div><h3>By attempt number</h3>{by_attempt}</div>{faults}</div>"
        )
        opened = " open" if len(cells) == 1 or c.is_baseline else ""
        parts.append(
            f'<details id="{p}cell-{i}"{opened}><summary>{esc(c.label)} '
            f'<span class="muted">({esc(c.run.run_id)})</span></summary>{inner}</details>'
        )
    return section(f"{p}detail", "Over time, attempts per transaction and hot keys", "".join(parts))
