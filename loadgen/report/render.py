"""The self-contained HTML page: inline CSS, inline SVG charts, no script, no request to anything."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from loadgen import __version__
from loadgen.model.baseline import TALK_CONDITIONS
from loadgen.model.outcomes import CONTENTION, Outcome
from loadgen.model.steps import step_order
from loadgen.report import analysis as A
from loadgen.report import charts
from loadgen.report.cells import Cell, _flatten, cells_frame, find_baseline, warnings_for
from loadgen.report.cluster import cluster_caption, cluster_rows
from loadgen.report.data import Study, redact
from loadgen.report.modelfit import MIN_RATE, TOLERANCE, cc_mode, not_applicable
from loadgen.report.reference import (
    HOT_KEY_SOURCE,
    SOURCE,
    TALK_LARGE,
    TALK_NO_RETRY,
    TALK_REPLAY,
    TALK_RETRY,
    Reference,
    replay_checks,
)
from loadgen.report.whatif import WhatIf
from loadgen.results.metrics import CONFLICT_RATE, CONFLICT_RATE_DEFINITION, KIND_LABELS, Counts, breakdown, rates

__all__ = ["render_page", "study_sections", "compare_sections"]

CSS = """
:root { --fg:#1d2430; --muted:#5c6675; --line:#d8dde5; --bg:#fff; --accent:#0b6bcb; --warn:#fff4d6; --bad:#b3261e; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); background: var(--bg); margin: 0 auto; max-width: 1120px; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; } .muted { color: var(--muted); }
nav a { margin-right: 12px; color: var(--accent); text-decoration: none; } nav { margin: 10px 0 4px; font-size: 13px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(165px, 1fr)); gap: 10px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card .v { font-size: 22px; font-weight: 600; } .card .k { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right; vertical-align: top; }
th { background: #f4f6f9; font-weight: 600; } td:first-child, th:first-child { text-align: left; }
tr.baseline td { background: #fff8d8; font-weight: 600; }
.warnings { background: var(--warn); border: 1px solid #e8c860; border-radius: 8px; padding: 8px 16px; }
.ok { color: #1b7f3b; font-weight: 600; } .bad { color: var(--bad); font-weight: 600; }
.chart svg { max-width: 100%; height: auto; } .note { background: #f4f6f9; border-radius: 8px; padding: 8px 14px; }
details { border: 1px solid var(--line); border-radius: 8px; padding: 6px 12px; margin: 8px 0; }
summary { cursor: pointer; font-weight: 600; } pre { white-space: pre-wrap; font-size: 12px; background: #f4f6f9; padding: 8px; border-radius: 6px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


def pct(v: float | None, digits: int = 2) -> str:
    return "-" if v is None or pd.isna(v) else f"{v:.{digits}%}"


def num(v: float | None, digits: int = 0) -> str:
    if v is None or pd.isna(v):
        return "-"
    return f"{v:,.{digits}f}"


def ratio(v: float | None) -> str:
    return "-" if v is None or pd.isna(v) else f"{v:.2f}x"


def ms(v: float | None) -> str:
    if v is None or pd.isna(v):
        return "-"
    return f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def table(headers: Iterable[str], rows: Iterable[Iterable[Any]], row_classes: Iterable[str] | None = None) -> str:
    classes = list(row_classes) if row_classes is not None else None
    out = ["<table><thead><tr>", *(f"<th>{esc(h)}</th>" for h in headers), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def card(key: str, value: str, title: str = "") -> str:
    t = f' title="{esc(title)}"' if title else ""
    return f'<div class="card"{t}><div class="v">{value}</div><div class="k">{esc(key)}</div></div>'


def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>{body}</section>'


def chart(svg: str) -> str:
    return f'<div class="chart">{svg}</div>'


# --- sections of one study (a run, a sweep, or several of them) ---------------------------------


def _invariants_html(cell: Cell) -> str:
    inv = cell.run.meta.get("invariants")
    if not isinstance(inv, list) or not inv:
        return '<span class="muted">not recorded</span>'
    bad = [i for i in inv if isinstance(i, dict) and not i.get("ok")]
    if bad:
        return '<span class="bad">VIOLATED: ' + esc(", ".join(str(i.get("name")) for i in bad)) + "</span>"
    return f'<span class="ok">all {len(inv)} hold</span>'


def _conflict_kinds(h: dict[str, Any]) -> str:
    """The conflicts' breakdown as counts and shares of them: "40001 ... 161 (6%), 55P03 ... 2,485 (94%)"."""
    return breakdown({k: v for k, v in sorted(h["outcomes"].items()) if k in CONTENTION}, KIND_LABELS)


def run_conditions(meta: dict[str, Any]) -> list[str]:
    """What the run's figures were measured under: concurrency control, warm-up, concurrency, latency."""
    out: list[str] = []
    cc = meta.get("cc")
    if isinstance(cc, dict) and cc.get("mode"):
        out.append(f"concurrency control: cc {cc['mode']}: {cc.get('how', '')}")
    warmup = meta.get("warmup")
    if isinstance(warmup, dict) and warmup.get("connections"):
        out.append(
            f"warm-up: {warmup['connections']:,} connections opened in {warmup.get('seconds', 0):.1f} s before the "
            "measured period (not part of any figure here)"
        )
    conc = meta.get("concurrency")
    if isinstance(conc, dict) and conc.get("in_flight_mean") is not None:
        out.append(
            f"in flight: {conc['in_flight_mean']:,.1f} transactions on average against {conc['users']:,} users asked "
            f"({conc['in_flight_share']:.0%})"
        )
    scenario = _dict(meta.get("scenario"))
    if any(scenario.get(k) for k in ("rtt_ms", "rtt_jitter_ms", "commit_ms")):
        out.append(
            f"emulated latency: +{scenario.get('rtt_ms', 0):g} ms per round trip (+ {scenario.get('rtt_jitter_ms', 0):g} ms "
            f"mean jitter), +{scenario.get('commit_ms', 0):g} ms on COMMIT, client-side; attempt latencies include it"
        )
    waits = meta.get("lock_waits")
    if isinstance(waits, dict):
        out.append(f"row-lock waits longer than {waits.get('longer_than_ms')} ms: {waits.get('count'):,} ({waits.get('source')})")
    return out


def headline_section(cells: list[Cell], p: str) -> str:
    if len(cells) == 1:
        h = cells[0].headline
        rpc = "-" if h["retries_per_commit"] is None else f"{h['retries_per_commit']:.4f}"
        body = (
            '<div class="cards">'
            + "".join(
                [
                    card(
                        CONFLICT_RATE,
                        pct(h["conflict_rate"]),
                        f"{h['conflicts']:,} of {h['attempts']:,} attempts failed on contention: {CONFLICT_RATE_DEFINITION}",
                    ),
                    card("attempts", num(h["attempts"])),
                    card("commits", num(h["commits"])),
                    card("transactions retried", pct(h["retried_share"])),
                    card("retries per commit", rpc),
                    card("throughput (commits/s)", num(h["throughput_commits_per_s"], 1), f"over {h['elapsed_s']:.1f} s"),
                    card(
                        "wasted work (failed attempts' time)",
                        f"{h['wasted_ms'] / 1000:,.1f} s",
                        f"{pct(h['wasted_share'])} of all attempt time",
                    ),
                    card("invariants", _invariants_html(cells[0])),
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
            f"wasted work {pct(h['wasted_share'])} of all attempt time",
        ]
        if other:
            extra.append("other outcomes: " + ", ".join(f"{k} {v:,}" for k, v in other.items()))
        body += f'<p class="muted">{esc("; ".join(extra))}.</p>'
        conditions = run_conditions(cells[0].run.meta)
        if conditions:
            body += '<ul class="conditions">' + "".join(f"<li>{esc(x)}</li>" for x in conditions) + "</ul>"
        return section(f"{p}headline", "Headline", body)
    rows, classes = [], []
    for c in cells:
        h = c.headline
        rows.append(
            [
                esc(c.label),
                pct(h["conflict_rate"]),
                esc(c.load),
                esc(_conflict_kinds(h) or "-"),
                num(h["attempts"]),
                num(h["commits"]),
                pct(h["retried_share"]),
                "-" if h["retries_per_commit"] is None else f"{h['retries_per_commit']:.4f}",
                num(h["throughput_commits_per_s"], 1),
                f"{h['wasted_ms'] / 1000:,.1f} s ({pct(h['wasted_share'], 1)})",
                _invariants_html(c),
            ]
        )
        classes.append("baseline" if c.is_baseline else "")
    body = table(
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
    return section(f"{p}headline", "Headline", body)


def hotspot_section(cells: list[Cell], p: str) -> str:
    base = find_baseline(cells)
    frame = cells_frame(cells, base)
    published = (
        f"The published figures on the same definition (every failed attempt / attempts): {pct(TALK_RETRY.conflict_rate)} with "
        f"the talk's immediate retry (735 conflicts / 10,735 attempts), {pct(TALK_NO_RETRY.conflict_rate)} without retry "
        f"(656 / 10,000 calls); {esc(SOURCE)}."
    )
    if base is not None:
        note = (
            f"<p>{esc(TALK_CONDITIONS)} It is marked with a star, every cell is shown as a ratio to it "
            f"({CONFLICT_RATE} {pct(base.headline['conflict_rate'])} measured here), and the talk's published figure is "
            f'drawn beside it as a red diamond.</p><p class="muted">{published}</p>'
        )
        ref = "baseline"
    else:
        note = (
            f'<p class="note">These runs hold no cell with the talk\'s conditions (1,000 accounts, 908 calls/s in an open '
            f"loop, immediate retry), so ratios are to the <b>published</b> figure, {CONFLICT_RATE} "
            f"{pct(TALK_RETRY.conflict_rate)}, drawn as a red diamond. A closed loop of 1,000 users is not that baseline "
            "(about 1,000 transactions in flight where the talk had about 18). Run the quickstart (or talk-replay) on "
            f'your target to compare like with like.</p><p class="muted">{published}</p>'
        )
        ref = "published"
    rows = [
        [
            esc(r.cell),
            esc(r.load),
            pct(r.conflict_rate),
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
            pct(TALK_RETRY.conflict_rate),
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


def concurrency_section(cells: list[Cell], p: str) -> str:
    """The second axis: the same transfers from more closed-loop users (a clearly separate experiment)."""
    frame = cells_frame(cells)
    closed = frame[frame["closed_loop"]]
    if closed["users"].nunique() < 2:
        return ""
    rows = [
        [esc(r.cell), num(r.users), pct(r.conflict_rate), num(r.throughput_commits_per_s, 1), ms(r.attempt_p50_ms)]
        for r in closed.itertuples()
    ]
    body = (
        "<p>Concurrency is a second axis: closed-loop users, each with one transaction in flight and no think time, so "
        "about as many transactions are in flight as there are users (the talk had about 18). More users raise "
        "lambda x D; past what the machine holds they only add queueing (see the warnings).</p>"
        + chart(charts.concurrency(frame))
        + table(["cell", "closed-loop users", CONFLICT_RATE, "commits/s", "attempt p50 ms"], rows)
    )
    return section(f"{p}concurrency", f"Concurrency: {CONFLICT_RATE} against closed-loop users", body)


def heatmap_section(cells: list[Cell], p: str) -> str:
    frame = cells_frame(cells)
    frame = frame[frame["closed_loop"]]  # users mean in-flight transactions only in a closed loop
    if frame.empty or (frame["accounts"].nunique() < 2 and frame["users"].nunique() < 2):
        return ""
    return section(
        f"{p}heatmap", f"Heatmap: {CONFLICT_RATE} over accounts x closed-loop users", chart(charts.heatmap(frame.reset_index(drop=True)))
    )


def model_sentence(cells: list[Cell]) -> str:
    fits = [c.fit for c in cells if c.fit is not None]
    if not any(f.model_rate is not None for f in fits):
        return "The model needs the number of accounts and at least one commit; it could not be computed here."
    judged = [f for f in fits if f.judged]
    skipped = [c for c in cells if c.fit is not None and c.fit.not_applicable]
    out = (
        "The model: an attempt whose snapshot-to-COMMIT window lasts D overlaps about lambda x D other transactions, "
        "each sharing one of its rows with probability c, so it fails with probability 1 - (1 - c)^(lambda D). "
        "D is not the whole attempt: BEGIN and the first statement's trip come before the snapshot, so D is the "
        "round trips after it (and any extra COMMIT time). lambda counts the transactions that can make another fail: "
        "on DSQL those that commit; on PostgreSQL every attempt, since a failing one holds its row locks too. "
        f"The measured side is the {CONFLICT_RATE}: {CONFLICT_RATE_DEFINITION} (one of two overlapping writers failed). "
    )
    if judged:
        ok = sum(1 for f in judged if f.fits)
        ratios = [f.ratio for f in judged if f.ratio is not None]
        out += (
            f"On the {len(judged)} cell{'s' if len(judged) != 1 else ''} where it applies with at least "
            f"{MIN_RATE:.0%} {CONFLICT_RATE}, measured / model is {min(ratios):.2f} to {max(ratios):.2f}: "
            f"{ok} of {len(judged)} within {TOLERANCE:.0%}. "
        )
    if skipped:
        reasons = sorted({c.fit.not_applicable.split(":")[0] for c in skipped if c.fit and c.fit.not_applicable})
        out += (
            f"It does not apply to {len(skipped)} cell{'s' if len(skipped) != 1 else ''} ({', '.join(reasons)}): "
            "there, measured and model are shown but not compared."
        )
    return out


def model_section(cells: list[Cell], p: str) -> str:
    rows = []
    for c in cells:
        f = c.fit
        if f is None:
            continue
        lam, d = f.commit_rate, f.window_ms
        if f.not_applicable:
            verdict = f"does not apply: {f.not_applicable}"
        elif f.fits is None:
            verdict = f"below {MIN_RATE:.0%}: not judged" if f.ratio is not None else "-"
        else:
            verdict = "within 30%" if f.fits else "outside 30%"
        rows.append(
            [
                esc(c.label),
                num(lam, 1),
                ms(f.attempt_ms),
                ms(d),
                "-" if f.collision is None else f"{f.collision:.5f}",
                "-" if lam is None or d is None else f"{lam * d / 1000:.2f}",
                pct(f.model_rate),
                pct(f.measured_rate),
                ratio(f.ratio),
                esc(verdict),
                esc(c.collision_source),
            ]
        )
    talk = A.model_conflict_rate(TALK_NO_RETRY.calls_per_s, TALK_NO_RETRY.mean_ms / 1000, A.pair_collision(1000))
    rows.append(
        [
            "DSQL talk (published)",
            num(TALK_NO_RETRY.calls_per_s, 1),
            ms(TALK_NO_RETRY.mean_ms),
            ms(TALK_NO_RETRY.mean_ms),
            f"{A.pair_collision(1000):.5f}",
            f"{TALK_NO_RETRY.calls_per_s * TALK_NO_RETRY.mean_ms / 1000:.2f}",
            pct(talk),
            pct(TALK_NO_RETRY.conflict_rate),
            ratio(TALK_NO_RETRY.conflict_rate / talk),
            "D = the whole call (the only figure published)",
            "1,000 uniform accounts",
        ]
    )
    t = table(
        [
            "cell",
            "lambda: commits/s (DSQL) or attempts/s (PostgreSQL)",
            "mean committed attempt ms",
            "D: snapshot to COMMIT ms",
            "c",
            "lambda x D",
            "model",
            f"measured {CONFLICT_RATE}",
            "measured / model",
            "fit",
            "c from",
        ],
        rows,
        ["" for c in cells if c.fit is not None] + ["muted"],
    )
    return section(
        f"{p}model",
        "The first-order model beside the measurement",
        f"<p>{esc(model_sentence(cells))}</p>" + chart(charts.model(cells_frame(cells))) + t,
    )


def whatif_section(w: WhatIf | None, p: str) -> str:
    """Predicted cells around one measured cell (loadgen.report.whatif), with the check on its own cell."""
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
            ["measured", pct(h["conflict_rate"]), num(h["retries_per_commit"], 4), num(h["throughput_commits_per_s"], 0)],
            ["simulated", pct(w.own.conflict_rate), num(w.own.retries_per_commit, 4), num(w.own.throughput_commits_per_s, 0)],
        ],
    )
    rows = [
        [
            num(c.accounts),
            num(c.users),
            pct(c.conflict_rate),
            num(c.retries_per_commit, 4),
            num(c.throughput_commits_per_s, 0),
            pct(c.retried_share),
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


def _ref_row(r: Reference) -> list[str]:
    return [
        esc(r.label),
        num(r.accounts),
        num(r.concurrency),
        num(r.calls),
        pct(r.conflict_rate),
        pct(r.retried_share),
        num(r.attempts_per_commit, 4) if r.attempts_per_commit else "-",
        num(r.calls_per_s, 0),
        ms(r.mean_ms),
        esc(r.note),
    ]


def _differences(base: Cell | None) -> list[str]:
    """What differs between the baseline cell and the talk, per concurrency mode; its lambda x D is the model table's."""
    talk_ld = TALK_NO_RETRY.calls_per_s * TALK_NO_RETRY.mean_ms / 1000
    out = [
        "The talk ran 10 batches of 1,000 parallel AWS Lambda calls against a multi-AZ DSQL cluster: 908 calls/s of "
        f"about 20 ms, so about {talk_ld:.0f} in flight at the database (lambda x D = {TALK_NO_RETRY.calls_per_s:.0f}/s x "
        f"{TALK_NO_RETRY.mean_ms} ms = {talk_ld:.1f}). loadgen replays that load from one machine."
    ]
    if base is None:
        return out + ["These runs have no cell with the talk's conditions, so the comparison above is only with the published figure."]
    meta = base.run.meta
    target = meta.get("target", {}) if isinstance(meta.get("target"), dict) else {}
    server = str(meta.get("versions", {}).get("server", "")) if isinstance(meta.get("versions"), dict) else ""
    kind = target.get("kind", "unknown")
    cc = _dict(meta.get("cc"))
    mode = cc_mode(base.run)
    if kind == "dsql":
        out.append("Your target is Aurora DSQL, as in the talk: no row locks, conflicts decided at COMMIT (first committer wins).")
    elif mode == "locking":
        out.append(
            f"Your target is {esc(kind)} ({esc(server.split(' on ')[0] or 'server unknown')}) in cc locking mode: "
            "writers wait on row locks (and may deadlock, 40P01) before PostgreSQL reports 40001, where DSQL never waits; "
            "the model does not apply to such cells."
        )
    elif mode == "nowait":
        how = f" ({esc(cc['how'])})" if cc.get("how") else ""
        out.append(
            f"Your target is {esc(kind)} ({esc(server.split(' on ')[0] or 'server unknown')}) in cc nowait mode{how}: no "
            "writer waits on a row lock, but the later *writer* fails at its statement (55P03), where DSQL fails the later "
            f"*committer* at COMMIT (40001); the {CONFLICT_RATE} counts both kinds the same way."
        )
    else:
        how = f" ({esc(cc['how'])})" if cc.get("how") else ""
        out.append(
            f"Your target is {esc(kind)} ({esc(server.split(' on ')[0] or 'server unknown')}) in cc occ mode{how}: "
            "first committer wins, as on DSQL: reads at the snapshot, writes applied with COMMIT, the later committer "
            f"fails at COMMIT with 40001; the {CONFLICT_RATE} counts every contention failure whatever its SQLSTATE."
        )
    f = base.fit
    h = base.headline
    if f is not None and f.commit_rate is not None and f.window_ms is not None:
        out.append(
            f"Your lambda x D = {f.commit_rate:,.1f}/s x {f.window_ms:.1f} ms = {f.commit_rate * f.window_ms / 1000:.1f} "
            "(the model table's, lambda and D as defined there, D the snapshot-to-COMMIT window), "
            f"against the talk's {talk_ld:.1f}; your mean committed attempt took "
            f"{ms(f.attempt_ms)} ms against the talk's {TALK_NO_RETRY.mean_ms} ms. By the model a larger lambda x D means "
            "more conflicts."
        )
    why = f.not_applicable if f is not None else None
    if why:
        out.append(f"The model does not apply to this cell: {esc(why)}.")
    scen = base.run.scenario
    retry = scen.get("retry") if isinstance(scen.get("retry"), dict) else {}
    if retry:
        out.append(
            f"Retry policy: backoff {esc(retry.get('backoff', '?'))}, at most {esc(retry.get('max_attempts', '?'))} "
            "attempts; the talk retried immediately and without bound."
        )
    if scen.get("duration_s"):
        out.append(f"Your cell ran for {h['elapsed_s']:.0f} s; the talk's 10,000 calls took about 11 s.")
    return out


def reference_section(cells: list[Cell], p: str) -> str:
    base = find_baseline(cells)
    rows = [_ref_row(TALK_NO_RETRY), _ref_row(TALK_RETRY), _ref_row(TALK_LARGE)]
    classes = ["", "", ""]
    # Every cell that replays the talk (the baseline, a talk-replay run) beside the published rows, checked against them.
    replays = [c for c in cells if c.is_baseline or str(c.run.scenario.get("name", "")).startswith(TALK_REPLAY)]
    checks = ""
    for c in replays:
        h = c.headline
        measured = h["conflict_rate"]
        scen = c.run.scenario
        emulated = f"emulated {_fmt_ms(scen.get('rtt_ms'))} ms per round trip, COMMIT {_fmt_ms(scen.get('commit_ms'))} ms more"
        what = "your baseline cell" if c is base else f"{c.run.run_id} (talk-replay)"
        rows.insert(
            0,
            [
                f"{esc(what)}, measured here",
                num(c.accounts),
                num(c.users),
                num(h["transactions"]),
                pct(measured),
                pct(h["retried_share"]),
                num(h["attempts_per_commit"], 4),
                num(h["transactions"] / h["elapsed_s"] if h["elapsed_s"] else None, 0),
                ms(h["mean_attempt_ms"]),
                esc(f"{c.load}, at most {c.users:,} in flight; {emulated}; at most {h['max_attempts']} attempts for one"),
            ],
        )
        classes.insert(0, "baseline")
        results = replay_checks(measured, h["retried_share"], h["max_attempts"])
        checks += table(
            [f"{esc(what)}: {esc(c.run.run_id)}", "measured", "published (immediate retry)", "target", "met"],
            [
                [
                    esc(r.name),
                    (str(int(r.measured)) if r.measured is not None else "-") if r.name.startswith("most") else pct(r.measured),
                    str(int(r.published)) if r.name.startswith("most") else pct(r.published),
                    esc(r.tolerance),
                    '<span class="ok">yes</span>' if r.ok else '<span class="bad">no</span>',
                ]
                for r in results
            ],
        )
    t = table(
        ["", "accounts", "concurrency", "calls", CONFLICT_RATE, "retried", "attempts/commit", "calls/s", "mean ms", "note"], rows, classes
    )
    t += (
        f'<p class="muted">{CONFLICT_RATE}: {esc(CONFLICT_RATE_DEFINITION)}, here as in every section; the published '
        "figures count every failed call the same way. calls/s counts transactions started per second of the run.</p>" + checks
    )
    conditions = f"<p>{esc(TALK_CONDITIONS)}</p>"
    diffs = "<ul>" + "".join(f"<li>{d}</li>" for d in _differences(base)) + "</ul>"
    src = f'<p class="muted">Source: {esc(SOURCE)}. Also: {esc(HOT_KEY_SOURCE)}.</p>'
    return section(f"{p}reference", "Published Aurora DSQL reference", conditions + t + src + "<h3>What differs</h3>" + diffs)


def _fmt_ms(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "0"


def latency_section(cells: list[Cell], p: str) -> str:
    rows = []
    for c in cells:
        a, t = c.headline["attempt_latency_ms"], c.headline["transaction_latency_ms"]
        rows.append(
            [esc(c.label), pct(c.headline["conflict_rate"])]
            + [ms(a[k]) for k in ("p50", "p95", "p99", "p99.9")]
            + [ms(t[k]) for k in ("p50", "p95", "p99", "p99.9")]
        )
    body = (
        '<p class="muted">Per attempt: one try, from BEGIN to COMMIT or error. Per transaction: from its first '
        "attempt's start to its last attempt's end, retries and backoff included. Milliseconds.</p>"
    )
    body += table(
        ["cell", "conflict rate", "attempt p50", "p95", "p99", "p99.9", "transaction p50", "p95", "p99", "p99.9"],
        rows,
        ["baseline" if c.is_baseline else "" for c in cells],
    )
    frame = cells_frame(cells)
    if frame["accounts"].nunique() > 1:
        body += chart(charts.latency(frame))
    return section(f"{p}latency", "Latency against contention", body)


def failures_section(cells: list[Cell], p: str) -> str:
    """Failed attempts by the step of the transaction shape they ended at (attempts.parquet's failed_at)."""
    with_steps = [c for c in cells if c.failures]
    if not with_steps:
        return ""
    steps: list[str] = []
    for c in with_steps:
        steps += [f.step for f in c.failures if f.step not in steps]
    steps = step_order(steps)
    rows = []
    for c in with_steps:
        at = {f.step: f for f in c.failures}
        rows.append(
            [esc(c.label), num(sum(f.failed for f in c.failures))]
            + [f"{num(at[s].failed)} ({pct(at[s].share, 1)})" if s in at else "-" for s in steps]
        )
    body = (
        '<p class="muted">Where failed attempts ended, by the step of the transaction shape (begin, debit, credit, '
        "ledger, commit, ...; connect: no connection came). On DSQL, and under cc occ, a conflict ends an attempt at "
        "commit, after all its statements; under cc nowait or locking, at the statement that met another's row lock.</p>"
    )
    body += table(["cell", "failed attempts"] + [esc(s) for s in steps], rows)
    return section(f"{p}failures", "Failures by step", body)


def detail_section(cells: list[Cell], p: str) -> str:
    parts = []
    for i, c in enumerate(cells):
        svg = charts.cell_detail(c.timeline, c.distribution, c.hot_keys, c.by_attempt, c.faults)
        keys = (
            table(
                ["account", "conflicts", "attempts touching it", "their conflict rate", "share of conflicts"],
                [
                    [f"#{int(r.account)}", num(r.conflicts), num(r.attempts), pct(r.conflict_rate), pct(r.share)]
                    for r in c.hot_keys.itertuples()
                ],
            )
            if len(c.hot_keys)
            else "<p>No conflicts.</p>"
        )
        dist = table(
            ["attempts", "transactions", "share", "of them committed"],
            [[int(r.attempts), num(r.transactions), pct(r.share, 3), num(r.committed)] for r in c.distribution.itertuples()],
        )
        by_attempt = table(
            ["attempt number", "attempts", "conflict rate", "p50 ms", "p95", "p99", "p99.9"],
            [
                [esc(r["attempt"]), num(r["attempts"]), pct(r["conflict_rate"]), ms(r["p50"]), ms(r["p95"]), ms(r["p99"]), ms(r["p99.9"])]
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


def warnings_section(cells: list[Cell], p: str) -> str:
    w = warnings_for(cells)
    if not w:
        return section(
            f"{p}warnings",
            "Warnings",
            '<p class="ok">None: enough attempts, complete runs, comparable durations, no sign of a saturated load generator or machine, attempts as fast as the target answers lightly loaded.</p>',
        )
    items = "".join(f"<li>{esc(x)}</li>" for x in w)
    return section(f"{p}warnings", "Warnings", f'<div class="warnings"><ul>{items}</ul></div>')


def metadata_section(cells: list[Cell], p: str) -> str:
    parts = []
    for c in cells:
        m = c.run.meta
        rows = [
            ["run", esc(c.run.run_id)],
            ["directory", esc(c.run.path)],
            ["started", esc(m.get("started_at", "-"))],
            ["ended", esc(m.get("ended_at", "-"))],
            ["completed", esc(m.get("completed", "unknown"))],
            ["command line", esc(" ".join(map(str, redact(m.get("command_line") or []))) or "-")],
            ["target", esc(json.dumps(redact(m.get("target", {})), default=str))],
            ["machine", esc(json.dumps(m.get("machine", {}), default=str))],
        ]
        versions = m.get("versions", {}) if isinstance(m.get("versions"), dict) else {}
        rows += [[esc(f"version: {k}"), esc(v)] for k, v in versions.items()]
        if isinstance(m.get("client"), dict):
            rows.append(["load generator", esc(json.dumps(m["client"]))])
        found = m.get("invariants")
        inv = found if isinstance(found, list) else []
        rows += [
            [
                esc(f"invariant: {i.get('name')}"),
                ('<span class="ok">ok</span> ' if i.get("ok") else '<span class="bad">VIOLATED</span> ') + esc(i.get("detail", "")),
            ]
            for i in inv
            if isinstance(i, dict)
        ]
        scen = f"<pre>{esc(json.dumps(redact(c.run.scenario), indent=2, default=str))}</pre>"
        parts.append(f"<details><summary>{esc(c.label)}</summary>{table(['', ''], rows)}<h3>Scenario</h3>{scen}</details>")
    return section(f"{p}metadata", "Metadata", "".join(parts))


def cluster_section(cells: list[Cell], p: str) -> str:
    """DSQL's own counters (CloudWatch) beside loadgen's; "" when no cell has them (every other target)."""
    parts = []
    for c in cells:
        caption = cluster_caption(c)
        if caption is None:
            continue
        rows = cluster_rows(c)
        label = f"<h3>{esc(c.label)}</h3>" if len(cells) > 1 else ""
        shown = table(["", "loadgen counted", "the cluster counted"], [[esc(x) for x in r] for r in rows]) if rows else ""
        parts.append(f'{label}{shown}<p class="muted">{esc(caption)}</p>')
    return section(f"{p}cluster", "The cluster's own counters", "".join(parts)) if parts else ""


SECTIONS = [
    ("headline", "Headline"),
    ("warnings", "Warnings"),
    ("hotspot", "Hot spots"),
    ("concurrency", "Concurrency"),
    ("heatmap", "Heatmap"),
    ("model", "Model"),
    ("whatif", "What if"),
    ("reference", "DSQL reference"),
    ("cluster", "Cluster counters"),
    ("latency", "Latency"),
    ("failures", "Failures by step"),
    ("detail", "Over time & hot keys"),
    ("metadata", "Metadata"),
]


def study_sections(cells: list[Cell], p: str = "", whatif: WhatIf | None = None) -> str:
    """Every section for one set of cells; ``p`` prefixes element ids (for side-by-side pages)."""
    return "".join(
        [
            headline_section(cells, p),
            warnings_section(cells, p),
            hotspot_section(cells, p),
            concurrency_section(cells, p),
            heatmap_section(cells, p),
            model_section(cells, p),
            whatif_section(whatif, p),
            reference_section(cells, p),
            cluster_section(cells, p),
            latency_section(cells, p),
            failures_section(cells, p),
            detail_section(cells, p),
            metadata_section(cells, p),
        ]
    )


def nav(p: str = "", present: str = "") -> str:
    links = [f'<a href="#{p}{sid}">{esc(t)}</a>' for sid, t in SECTIONS if f'id="{p}{sid}"' in present]
    return "<nav>" + "".join(links) + "</nav>"


def render_page(title: str, subtitle: str, body: str, nav_html: str = "") -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><div class="muted">{subtitle}</div>{nav_html}</header>'
        f"<main>{body}</main>"
        f"<footer>Generated by loadgen {esc(__version__)} on {esc(now)}. Self-contained: every chart is inline SVG; "
        "the page loads nothing from anywhere.</footer></body></html>\n"
    )


# --- comparison ----------------------------------------------------------------------------------


def _describe_change(name: str, a: float | None, b: float | None, fmt: Any) -> str | None:
    if a is None or b is None:
        return None
    if a == b:
        return f"{name} is the same ({fmt(a)})."
    if a == 0:
        return f"{name}: {fmt(a)} in A, {fmt(b)} in B."
    r = b / a
    word = "higher" if r > 1 else "lower"
    return f"{name} is {r:.2f}x in B ({fmt(b)} against {fmt(a)}): {abs(r - 1):.0%} {word}."


def compare_sections(a: tuple[Study, list[Cell]], b: tuple[Study, list[Cell]]) -> str:
    """Side by side: headline numbers, differences in words, the hot-spot chart overlaid, matched cells."""
    (sa, ca), (sb, cb) = a, b
    fa, fb = cells_frame(ca, find_baseline(ca)), cells_frame(cb, find_baseline(cb))
    pooled = []
    for cells in (ca, cb):
        counts = Counts(
            attempts=sum(c.headline["attempts"] for c in cells),
            commits=sum(c.headline["commits"] for c in cells),
            conflicts=sum(c.headline["conflicts"] for c in cells),
            retries=sum(c.headline["retries"] for c in cells),
            elapsed_s=sum(c.headline["elapsed_s"] for c in cells),
        )
        pooled.append({"attempts": counts.attempts, "commits": counts.commits, **rates(counts), "cells": len(cells)})
    pa_, pb_ = pooled
    rows = [
        ["cells", num(pa_["cells"]), num(pb_["cells"])],
        ["attempts", num(pa_["attempts"]), num(pb_["attempts"])],
        ["commits", num(pa_["commits"]), num(pb_["commits"])],
        [CONFLICT_RATE, pct(pa_["conflict_rate"]), pct(pb_["conflict_rate"])],
        ["retries per commit", num(pa_["retries_per_commit"], 4), num(pb_["retries_per_commit"], 4)],
        [
            "throughput (commits per measured second, cells pooled)",
            num(pa_["throughput_commits_per_s"], 1),
            num(pb_["throughput_commits_per_s"], 1),
        ],
    ]
    head = table(["", f"A: {sa.label}", f"B: {sb.label}"], rows)
    sentences = [
        _describe_change("The conflict rate", pa_["conflict_rate"], pb_["conflict_rate"], pct),
        _describe_change("Retries per commit", pa_["retries_per_commit"], pb_["retries_per_commit"], lambda v: f"{v:.4f}"),
        _describe_change("Throughput", pa_["throughput_commits_per_s"], pb_["throughput_commits_per_s"], lambda v: f"{v:,.1f}/s"),
    ]
    # Cells matched on accounts x users.
    ka = {(r.accounts, r.users): r for r in fa.itertuples()}
    kb = {(r.accounts, r.users): r for r in fb.itertuples()}
    matched = [k for k in ka if k in kb]
    mrows = []
    for k in matched:
        ra, rb = ka[k], kb[k]
        mrows.append(
            [
                f"{num(k[0])} accounts x {num(k[1])} users",
                pct(ra.conflict_rate),
                pct(rb.conflict_rate),
                ratio(A.ratio_to_baseline(rb.conflict_rate, ra.conflict_rate)),
                num(ra.attempts_per_commit, 4),
                num(rb.attempts_per_commit, 4),
                num(ra.throughput_commits_per_s, 1),
                num(rb.throughput_commits_per_s, 1),
                ms(ra.txn_p99_ms),
                ms(rb.txn_p99_ms),
            ]
        )
    matched_html = (
        table(["cell", "conflict A", "conflict B", "B / A", "attempts/commit A", "B", "commits/s A", "B", "txn p99 ms A", "B"], mrows)
        if mrows
        else "<p>No cell has the same accounts x users on both sides.</p>"
    )
    # Settings that differ.
    diffs = _settings_diff(sa, sb)
    overlay = pd.concat([fa.assign(series="A: " + fa["series"]), fb.assign(series="B: " + fb["series"])], ignore_index=True)
    styles = {s: ("-" if s.startswith("A: ") else "--") for s in overlay["series"]}
    body = (
        head
        + "<h3>Differences</h3><ul>"
        + "".join(f"<li>{esc(s)}</li>" for s in sentences if s)
        + "".join(f"<li>{d}</li>" for d in diffs)
        + "</ul>"
        + "<h3>Hot spots, A solid and B dashed</h3>"
        + chart(charts.hotspot(overlay, styles=styles))
        + "<h3>Matched cells</h3>"
        + matched_html
    )
    return section("compare", f"Comparison: A = {sa.label}, B = {sb.label}", body)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _settings_diff(sa: Study, sb: Study) -> list[str]:
    def common(study: Study, part: str) -> dict[str, Any]:
        flats = [_flatten(_dict(r.meta.get(part))) for r in study.runs]
        if not flats:
            return {}
        return {k: v for k, v in flats[0].items() if all(f.get(k) == v for f in flats[1:])}

    out = []
    for part in ("scenario", "target"):
        da, db = redact(common(sa, part)), redact(common(sb, part))
        for k in sorted(set(da) | set(db)):
            if k in ("name", "seed", "home", "url", "spawn_rate", "accounts", "users"):
                continue
            if da.get(k) != db.get(k):
                out.append(f"{esc(part)} <b>{esc(k)}</b>: A {esc(da.get(k, '-'))}, B {esc(db.get(k, '-'))}")
    va = (sa.runs[0].meta.get("versions") or {}).get("server") if sa.runs else None
    vb = (sb.runs[0].meta.get("versions") or {}).get("server") if sb.runs else None
    if va != vb:
        out.append(f"server: A {esc(va or '-')}, B {esc(vb or '-')}")
    if not out:
        out.append(
            "No setting differs between A and B (other than accounts and users): differences are run-to-run noise or the environment."
        )
    return out
