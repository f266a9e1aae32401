"""Model: the first-order conflict model (loadgen.report.modelfit) beside what was measured."""

from __future__ import annotations

from loadgen.report import analysis as A
from loadgen.report import charts
from loadgen.report.cells import Cell, cells_frame
from loadgen.report.html import chart, esc, ms, num, ratio, section, table
from loadgen.report.modelfit import MIN_RATE, TOLERANCE
from loadgen.report.reference import (
    TALK_NO_RETRY,
)
from loadgen.results.metrics import CONFLICT_RATE, CONFLICT_RATE_DEFINITION, percent

__all__ = ["model_section", "model_sentence"]


def model_sentence(cells: list[Cell]) -> str:
    """The model in words, and how it fared on the cells where it applies."""
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
    """The model's inputs and prediction per cell, measured beside it, and the talk's own figures as a check."""
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
                percent(f.model_rate),
                percent(f.measured_rate),
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
            percent(talk),
            percent(TALK_NO_RETRY.conflict_rate),
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
