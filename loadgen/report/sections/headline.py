"""Headline: the figures a reader sees first (cards for one run, a row per cell for several), and what they were measured under."""

from __future__ import annotations

from typing import Any

from loadgen.model.outcomes import CONTENTION
from loadgen.report import analysis as A
from loadgen.report.cells import Cell
from loadgen.report.data import Run
from loadgen.report.html import card, esc, num, section, table
from loadgen.results.metrics import CONFLICT_RATE, CONFLICT_RATE_DEFINITION, KIND_LABELS, breakdown, percent

__all__ = ["headline_section", "run_conditions"]


def _invariants_html(cell: Cell) -> str:
    checked = cell.run.sections.invariants
    if not checked:
        return '<span class="muted">not recorded</span>'
    bad = [i for i in checked if not i.ok]
    if bad:
        return '<span class="bad">VIOLATED: ' + esc(", ".join(str(i.name) for i in bad)) + "</span>"
    return f'<span class="ok">all {len(checked)} hold</span>'


def _conflict_kinds(h: dict[str, Any]) -> str:
    """The conflicts' breakdown as counts and shares of them: "40001 ... 161 (6%), 55P03 ... 2,485 (94%)"."""
    return breakdown({k: v for k, v in sorted(h["outcomes"].items()) if k in CONTENTION}, KIND_LABELS)


def run_conditions(run: Run) -> list[str]:
    """What the run's figures were measured under: concurrency control, warm-up, concurrency, latency."""
    out: list[str] = []
    s = run.sections
    if s.cc.mode:
        out.append(f"concurrency control: cc {s.cc.mode}: {s.cc.how or ''}")
    if s.warmup.connections:
        out.append(
            f"warm-up: {s.warmup.connections:,} connections opened in {s.warmup.seconds or 0:.1f} s before the "
            "measured period (not part of any figure here)"
        )
    conc = s.concurrency
    if conc.in_flight_mean is not None and conc.users is not None and conc.in_flight_share is not None:
        out.append(
            f"in flight: {conc.in_flight_mean:,.1f} transactions on average against {conc.users:,} users asked ({conc.in_flight_share:.0%})"
        )
    scenario = run.scenario
    if any(scenario.get(k) for k in ("rtt_ms", "rtt_jitter_ms", "commit_ms")):
        out.append(
            f"emulated latency: +{scenario.get('rtt_ms', 0):g} ms per round trip (+ {scenario.get('rtt_jitter_ms', 0):g} ms "
            f"mean jitter), +{scenario.get('commit_ms', 0):g} ms on COMMIT, client-side; attempt latencies include it"
        )
    waits = s.lock_waits
    if waits is not None and waits.count is not None:
        longer = "" if waits.longer_than_ms is None else f" longer than {waits.longer_than_ms:g} ms"
        source = f" ({waits.source})" if waits.source else ""
        out.append(f"row-lock waits{longer}: {waits.count:,}{source}")
    return out


def headline_section(cells: list[Cell], p: str) -> str:
    """One run: cards, then what they were measured under; several: a row per cell."""
    body = _one_run(cells[0]) if len(cells) == 1 else _cells_table(cells)
    return section(f"{p}headline", "Headline", body)


def _one_run(cell: Cell) -> str:
    h = cell.headline
    rpc = "-" if h["retries_per_commit"] is None else f"{h['retries_per_commit']:.4f}"
    body = (
        '<div class="cards">'
        + "".join(
            [
                card(
                    CONFLICT_RATE,
                    percent(h["conflict_rate"]),
                    f"{h['conflicts']:,} of {h['attempts']:,} attempts failed on contention: {CONFLICT_RATE_DEFINITION}",
                ),
                card("attempts", num(h["attempts"])),
                card("commits", num(h["commits"])),
                card("transactions retried", percent(h["retried_share"])),
                card("retries per commit", rpc),
                card("throughput (commits/s)", num(h["throughput_commits_per_s"], 1), f"over {h['elapsed_s']:.1f} s"),
                card(
                    "wasted work (failed attempts' time)",
                    f"{h['wasted_ms'] / 1000:,.1f} s",
                    f"{percent(h['wasted_share'])} of all attempt time",
                ),
                card("invariants", _invariants_html(cell)),
            ]
        )
        + "</div>"
    )
    other = {k: v for k, v in h["outcomes"].items() if k not in A.COMMITTED and k not in CONTENTION}
    kinds = _conflict_kinds(h)
    extra = [
        *([f"{h['conflicts']:,} conflicts by kind: {kinds}"] if kinds else []),
        f"{h['transactions']:,} transactions, at most {h['max_attempts']} attempts for one",
        f"{h['failed_transactions']:,} transactions gave up",
        f"wasted work {percent(h['wasted_share'])} of all attempt time",
    ]
    if other:
        extra.append("other outcomes: " + ", ".join(f"{k} {v:,}" for k, v in other.items()))
    body += f'<p class="muted">{esc("; ".join(extra))}.</p>'
    conditions = run_conditions(cell.run)
    if conditions:
        body += '<ul class="conditions">' + "".join(f"<li>{esc(x)}</li>" for x in conditions) + "</ul>"
    return body


def _cells_table(cells: list[Cell]) -> str:
    rows, classes = [], []
    for c in cells:
        h = c.headline
        rows.append(
            [
                esc(c.label),
                percent(h["conflict_rate"]),
                esc(c.load),
                esc(_conflict_kinds(h) or "-"),
                num(h["attempts"]),
                num(h["commits"]),
                percent(h["retried_share"]),
                "-" if h["retries_per_commit"] is None else f"{h['retries_per_commit']:.4f}",
                num(h["throughput_commits_per_s"], 1),
                f"{h['wasted_ms'] / 1000:,.1f} s ({percent(h['wasted_share'], 1)})",
                _invariants_html(c),
            ]
        )
        classes.append("baseline" if c.is_baseline else "")
    return table(
        [
            "cell",
            CONFLICT_RATE,
            "load",
            "conflicts by kind",
            "attempts",
            "commits",
            "retried",
            "retries/commit",
            "commits/s",
            "wasted work",
            "invariants",
        ],
        rows,
        classes,
    )
