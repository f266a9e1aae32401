"""Cells: every run analysed once, settings told apart, the baseline found, warnings raised.

A *cell* is one run seen as a point of a study (accounts x users x whatever else
varies). All metrics of a cell are computed here from its attempts, and the
attempts are then dropped, so a report over many big runs holds one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from loadgen.model.scenario import Scenario
from loadgen.report import analysis as A
from loadgen.report.data import Run, Study
from loadgen.report.failures import StepFailures, by_step
from loadgen.report.modelfit import ModelFit, fit_model
from loadgen.report.reference import BASELINE, TALK_NO_RETRY
from loadgen.results.client import saturation_note

__all__ = ["Cell", "analyse_run", "analyse_study", "varying_settings", "find_baseline", "warnings_for", "cells_frame"]

#: Settings that differ between cells without making them different experiments.
_IGNORED_SETTINGS = {"name", "seed", "spawn_rate"}
#: With no conflict at all, fewer attempts than this cannot tell a rate of 0 from one of a few tenths of a percent.
MIN_ATTEMPTS = 1000
#: Below this, no rate is worth comparing; above it, the 95% interval decides (wider than +-20% of the rate: warn).
MIN_ATTEMPTS_ANY = 200


@dataclass
class Cell:
    """One run's metrics (attempts already reduced)."""

    run: Run
    headline: dict[str, Any]
    timeline: pd.DataFrame
    distribution: pd.DataFrame
    hot_keys: pd.DataFrame
    by_attempt: pd.DataFrame
    collision: float | None
    collision_source: str
    model_rate: float | None
    settings: dict[str, Any] = field(default_factory=dict)
    #: Injected faults (run.json ``faults``), with ``t_s`` on the timeline's clock.
    faults: list[dict[str, Any]] = field(default_factory=list)
    #: The first-order model on this cell: its inputs, the measured contention, whether it applies.
    fit: ModelFit | None = None
    #: Failed attempts by the step of the shape they ended at (attempts.parquet's failed_at; [] before it).
    failures: list[StepFailures] = field(default_factory=list)

    @property
    def accounts(self) -> int | None:
        return self.run.accounts

    @property
    def users(self) -> int | None:
        return self.run.users

    @property
    def is_baseline(self) -> bool:
        return (self.accounts, self.users) == BASELINE

    @property
    def label(self) -> str:
        parts = []
        if self.accounts is not None:
            parts.append(f"{self.accounts:,} accounts")
        if self.users is not None:
            parts.append(f"{self.users:,} users")
        parts += [f"{k} {_fmt_setting(v)}" for k, v in self.settings.items() if k not in ("accounts", "users")]
        return ", ".join(parts) or self.run.run_id

    @property
    def series(self) -> str:
        """The hot-spot chart's line this cell is on: everything but the number of accounts."""
        parts = [f"{self.users:,} users" if self.users is not None else "users ?"]
        parts += [f"{k} {_fmt_setting(v)}" for k, v in self.settings.items() if k not in ("accounts", "users")]
        return ", ".join(parts)


def _fmt_setting(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def analyse_run(run: Run) -> Cell:
    """Reduce one run's attempts to its metrics."""
    c = run.compact
    txns = A.transactions(c)
    h = A.headline(c, txns)
    collision, source = collision_for(run)
    fit = fit_model(run, c, h, collision)
    cell = Cell(
        run=run,
        headline=h,
        timeline=A.timeline(c, txns),
        distribution=A.attempts_distribution(txns),
        hot_keys=A.hot_keys(c),
        by_attempt=A.latency_by_attempt(c),
        collision=collision,
        collision_source=source,
        model_rate=fit.model_rate,
        fit=fit,
        faults=faults_on_timeline(run.meta.get("faults"), float(c["start_ms"].min()) if len(c) else None),
        failures=by_step(run.attempts_table(["outcome", "failed_at"])),
    )
    run.__dict__.pop("compact", None)  # drop the cached attempts: one run in memory at a time
    return cell


def faults_on_timeline(faults: Any, t0_ms: float | None) -> list[dict[str, Any]]:
    """Each fault with its time in seconds from the first attempt (the timeline's zero)."""
    if not isinstance(faults, list) or t0_ms is None:
        return []
    out = []
    for f in faults:
        if isinstance(f, dict) and isinstance(f.get("at"), (int, float)):
            out.append({**f, "t_s": (float(f["at"]) * 1000.0 - t0_ms) / 1000.0})
    return out


def collision_for(run: Run) -> tuple[float | None, str]:
    """The pair collision probability c, and where it came from."""
    q = run.collision_probability
    dist = str(run.scenario.get("distribution", Scenario.distribution))
    n = run.accounts
    if q is not None and not (dist == "uniform" and n is not None and abs(q - 1.0 / n) < 1e-12):
        return A.pair_collision(1.0 / q), f"q = {q:.3g} from run.json (N_eff = 1/q = {1.0 / q:,.0f})"
    if n is not None:
        how = "uniform keys" if dist == "uniform" else f"{dist} keys but no q recorded: q = 1/N assumed"
        return A.pair_collision(n), f"1 - C(N-2,2)/C(N,2), N = {n:,} ({how})"
    return None, "unknown: the run does not record its number of accounts"


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, list):
            out[key] = tuple(v)
        else:
            out[key] = v
    return out


def varying_settings(runs: list[Run]) -> list[str]:
    """Scenario settings (dotted names) whose values differ between runs, accounts and users first."""
    flats = [_flatten(r.scenario) for r in runs]
    keys: list[str] = []
    for f in flats:
        keys += [k for k in f if k not in keys]
    varying = [k for k in keys if k not in _IGNORED_SETTINGS and len({repr(f.get(k)) for f in flats}) > 1]
    head = [k for k in ("accounts", "users") if k in varying]
    return head + [k for k in varying if k not in head]


def analyse_study(study: Study) -> list[Cell]:
    return analyse_runs(study.runs)


def analyse_runs(runs: list[Run]) -> list[Cell]:
    keys = varying_settings(runs)
    cells = []
    for run in runs:
        cell = analyse_run(run)
        flat = _flatten(run.scenario)
        cell.settings = {k: flat.get(k) for k in keys}
        cells.append(cell)
    cells.sort(key=lambda c: (c.series, c.accounts or 0))
    return cells


def find_baseline(cells: list[Cell]) -> Cell | None:
    """The 1000 accounts x 1000 users cell (the one with most attempts if several)."""
    found = [c for c in cells if c.is_baseline]
    return max(found, key=lambda c: c.headline["attempts"]) if found else None


def cells_frame(cells: list[Cell], baseline: Cell | None = None) -> pd.DataFrame:
    """One row per cell with its key numbers and ratios to the baseline.

    Without a measured baseline cell, ratios are to the published DSQL figure
    (conflict rate 6.56%, no retry); attempts per commit and throughput ratios are then left out.
    ``goodput`` and ``goodput_ratio`` are older names of ``throughput_commits_per_s`` and
    ``throughput_ratio``, kept for notebooks written against them.
    """
    rows = []
    base_rate = baseline.headline["conflict_rate"] if baseline else TALK_NO_RETRY.conflict_rate
    base_apc = baseline.headline["attempts_per_commit"] if baseline else None
    base_tput = baseline.headline["throughput_commits_per_s"] if baseline else None
    for c in cells:
        h = c.headline
        rows.append(
            {
                "cell": c.label,
                "accounts": c.accounts,
                "users": c.users,
                "series": c.series,
                "attempts": h["attempts"],
                "commits": h["commits"],
                "conflict_rate": h["conflict_rate"],
                "attempts_per_commit": h["attempts_per_commit"],
                "retried_share": h["retried_share"],
                "contention_rate": h["contention_rate"],
                "throughput_commits_per_s": h["throughput_commits_per_s"],
                "goodput": h["throughput_commits_per_s"],
                "model_rate": c.model_rate,
                "model_applies": bool(c.fit and c.fit.not_applicable is None),
                "txn_p99_ms": h["transaction_latency_ms"]["p99"],
                "attempt_p50_ms": h["attempt_latency_ms"]["p50"],
                "attempt_p99_ms": h["attempt_latency_ms"]["p99"],
                "elapsed_s": h["elapsed_s"],
                "baseline": c.is_baseline,
                "conflict_ratio": A.ratio_to_baseline(h["conflict_rate"], base_rate),
                "apc_ratio": A.ratio_to_baseline(h["attempts_per_commit"], base_apc),
                "throughput_ratio": A.ratio_to_baseline(h["throughput_commits_per_s"], base_tput),
                "goodput_ratio": A.ratio_to_baseline(h["throughput_commits_per_s"], base_tput),
            }
        )
    return pd.DataFrame(rows)


def warnings_for(cells: list[Cell]) -> list[str]:
    """Reasons not to trust some of what the report shows, one sentence each."""
    out: list[str] = []
    for c in cells:
        h = c.headline
        name = c.label if len(cells) > 1 else "this run"
        cut = c.run.meta.get("cut_off")
        if isinstance(cut, dict):
            out.append(
                f"{name}: the run was cut off (killed before it finished); its last attempts reached disk at "
                f"{cut.get('last_write') or 'an unknown time'}, {cut.get('attempts_on_disk', 0):,} attempts in all; "
                "rates cover only that part, and the bank's invariants were never checked."
            )
        elif c.run.completed is False:
            out.append(f"{name}: the run was interrupted (incomplete); its rates cover only the part that ran.")
        elif c.run.completed is None:
            out.append(f"{name}: no run.json or no completion flag: the run may be incomplete.")
        ci = h["conflict_rate_95"]
        rate = h["conflict_rate"] or 0.0
        wide = ci is not None and rate > 0 and (ci[1] - ci[0]) / 2 > 0.2 * rate
        if h["attempts"] < MIN_ATTEMPTS_ANY or wide or (rate == 0 and h["attempts"] < MIN_ATTEMPTS):
            span = f" (95% interval {ci[0]:.2%} to {ci[1]:.2%})" if ci else ""
            out.append(
                f"{name}: only {h['attempts']:,} attempts and {h['conflicts']:,} conflicts: "
                f"the conflict rate {_pct(h['conflict_rate'])} is uncertain{span}."
            )
        note = saturation_note(c.run.meta.get("client") if isinstance(c.run.meta.get("client"), dict) else None)
        if note:
            out.append(f"{name}: {note}.")
        conc = c.run.meta.get("concurrency")
        if isinstance(conc, dict) and conc.get("warning"):
            out.append(f"{name}: {conc['warning']}.")
        if not c.run.meta.get("invariants_hold", True):
            out.append(f"{name}: invariants VIOLATED (see below): the database lost or invented money.")
    elapsed = [c.headline["elapsed_s"] for c in cells if c.headline["elapsed_s"] > 0]
    if len(elapsed) > 1 and max(elapsed) > 1.5 * min(elapsed):
        out.append(
            f"cells ran for very different durations ({min(elapsed):.1f} s to {max(elapsed):.1f} s): "
            "warm-up and ramp-up weigh differently in each, so compare their rates with care."
        )
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2%}"
