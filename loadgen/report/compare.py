"""The ``--compare`` report: two studies side by side, their differences in words, matched cells."""

from __future__ import annotations

from typing import Any

import pandas as pd

from loadgen.report import analysis as A
from loadgen.report import charts
from loadgen.report.cells import Cell, analyse_runs, cells_frame, find_baseline, flat_settings
from loadgen.report.data import Study, redact
from loadgen.report.html import chart, esc, ms, num, ratio, section, table
from loadgen.report.page import nav, render_page
from loadgen.report.sections import study_sections
from loadgen.results.metrics import CONFLICT_RATE, Counts, percent, rates

__all__ = ["compare_page", "compare_sections"]


def compare_page(a: Study, b: Study) -> str:
    """The whole ``--compare`` page: the comparison, then each study's own sections (ids prefixed a- and b-)."""
    ca, cb = analyse_runs(a.runs), analyse_runs(b.runs)
    body = compare_sections((a, ca), (b, cb))
    body += f'<h2 style="margin-top:48px">A: {esc(a.label)}</h2>' + study_sections(ca, "a-")
    body += f'<h2 style="margin-top:48px">B: {esc(b.label)}</h2>' + study_sections(cb, "b-")
    title = f"loadgen comparison: {a.label} vs {b.label}"
    sub = f"A = {esc(a.path)}; B = {esc(b.path)}"
    links = nav([("compare", "Comparison"), ("a-headline", "A"), ("b-headline", "B")])
    return render_page(title, sub, body, links)


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
    pa_, pb_ = _pooled(ca), _pooled(cb)
    rows = [
        ["cells", num(pa_["cells"]), num(pb_["cells"])],
        ["attempts", num(pa_["attempts"]), num(pb_["attempts"])],
        ["commits", num(pa_["commits"]), num(pb_["commits"])],
        [CONFLICT_RATE, percent(pa_["conflict_rate"]), percent(pb_["conflict_rate"])],
        ["retries per commit", num(pa_["retries_per_commit"], 4), num(pb_["retries_per_commit"], 4)],
        [
            "throughput (commits per measured second, cells pooled)",
            num(pa_["throughput_commits_per_s"], 1),
            num(pb_["throughput_commits_per_s"], 1),
        ],
    ]
    head = table(["", f"A: {sa.label}", f"B: {sb.label}"], rows)
    sentences = [
        _describe_change("The conflict rate", pa_["conflict_rate"], pb_["conflict_rate"], percent),
        _describe_change("Retries per commit", pa_["retries_per_commit"], pb_["retries_per_commit"], lambda v: f"{v:.4f}"),
        _describe_change("Throughput", pa_["throughput_commits_per_s"], pb_["throughput_commits_per_s"], lambda v: f"{v:,.1f}/s"),
    ]
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
        + _matched_cells(fa, fb)
    )
    return section("compare", f"Comparison: A = {sa.label}, B = {sb.label}", body)


def _pooled(cells: list[Cell]) -> dict[str, Any]:
    """One side's cells counted together, its figures derived as everywhere (loadgen.results.metrics.rates)."""
    counts = Counts(
        attempts=sum(c.headline["attempts"] for c in cells),
        commits=sum(c.headline["commits"] for c in cells),
        conflicts=sum(c.headline["conflicts"] for c in cells),
        retries=sum(c.headline["retries"] for c in cells),
        elapsed_s=sum(c.headline["elapsed_s"] for c in cells),
    )
    return {"attempts": counts.attempts, "commits": counts.commits, **rates(counts), "cells": len(cells)}


def _matched_cells(fa: pd.DataFrame, fb: pd.DataFrame) -> str:
    """Cells with the same accounts x users on both sides, A beside B."""
    ka = {(r.accounts, r.users): r for r in fa.itertuples()}
    kb = {(r.accounts, r.users): r for r in fb.itertuples()}
    rows = []
    for k in (k for k in ka if k in kb):
        ra, rb = ka[k], kb[k]
        rows.append(
            [
                f"{num(k[0])} accounts x {num(k[1])} users",
                percent(ra.conflict_rate),
                percent(rb.conflict_rate),
                ratio(A.ratio_to_baseline(rb.conflict_rate, ra.conflict_rate)),
                num(ra.attempts_per_commit, 4),
                num(rb.attempts_per_commit, 4),
                num(ra.throughput_commits_per_s, 1),
                num(rb.throughput_commits_per_s, 1),
                ms(ra.txn_p99_ms),
                ms(rb.txn_p99_ms),
            ]
        )
    if not rows:
        return "<p>No cell has the same accounts x users on both sides.</p>"
    return table(["cell", "conflict A", "conflict B", "B / A", "attempts/commit A", "B", "commits/s A", "B", "txn p99 ms A", "B"], rows)


def _settings_diff(sa: Study, sb: Study) -> list[str]:
    def common(study: Study, part: str) -> dict[str, Any]:
        flats = [flat_settings(r.scenario if part == "scenario" else r.target) for r in study.runs]
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
    va = sa.runs[0].versions.get("server") if sa.runs else None
    vb = sb.runs[0].versions.get("server") if sb.runs else None
    if va != vb:
        out.append(f"server: A {esc(va or '-')}, B {esc(vb or '-')}")
    if not out:
        out.append(
            "No setting differs between A and B (other than accounts and users): differences are run-to-run noise or the environment."
        )
    return out
