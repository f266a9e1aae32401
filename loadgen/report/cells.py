"""Cells: every run analysed once, settings told apart, the baseline found, warnings raised.

A *cell* is one run seen as a point of a study (accounts x users x whatever else
varies). All metrics of a cell are computed here from its attempts, and the
attempts are then dropped, so a report over many big runs holds one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from loadgen.model.baseline import axis, is_talk_baseline, load_label
from loadgen.model.scenario import Scenario
from loadgen.report import analysis as A
from loadgen.report.data import Run, Study
from loadgen.report.failures import StepFailures, by_step_batches
from loadgen.report.modelfit import ModelFit, engine_takes_locks, fit_from, run_statements
from loadgen.report.reduce import REQUIRED, reduce_attempts
from loadgen.report.reference import TALK_RETRY
from loadgen.results.warnings import run_warnings

__all__ = ["Cell", "analyse_run", "analyse_study", "varying_settings", "find_baseline", "warnings_for", "cells_frame"]

#: Settings that differ between cells without making them different experiments.
_IGNORED_SETTINGS = {"name", "seed", "spawn_rate"}


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
    #: The first-order model on this cell: its inputs, the measured conflict rate, whether it applies.
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
        """The cell replays the talk's conditions (loadgen.model.baseline): 1,000 accounts, its load, immediate retry."""
        return is_talk_baseline(self.run.scenario)

    @property
    def load(self) -> str:
        """The cell's load, named as the sweep's table names it: ``open loop 908/s``, ``50 closed-loop users``."""
        return load_label(self.run.scenario)

    @property
    def axis(self) -> str:
        """``baseline``, ``hot spots`` (the talk's load, other accounts) or ``concurrency`` (closed-loop users)."""
        return axis(self.run.scenario)

    @property
    def label(self) -> str:
        """``1,000 accounts, open loop 908/s`` (and any other setting that differs between cells)."""
        parts = []
        if self.accounts is not None:
            parts.append(f"{self.accounts:,} accounts")
        if "users" in self.settings or any(k in self.settings for k in ("load", "load.model", "arrival_rate", "load.arrival_rate")):
            parts.append(self.load)
        parts += [f"{k} {_fmt_setting(v)}" for k, v in self.settings.items() if k not in _LOAD_SETTINGS]
        return ", ".join(parts) or self.run.run_id

    @property
    def series(self) -> str:
        """The hot-spot chart's line this cell is on: everything but the number of accounts (its load first)."""
        parts = [self.load]
        parts += [f"{k} {_fmt_setting(v)}" for k, v in self.settings.items() if k not in _LOAD_SETTINGS]
        return ", ".join(parts)


#: Settings the load's name already says (or that only bound the time): not repeated in a series name.
_LOAD_SETTINGS = {"accounts", "users", "load", "load.model", "load.arrival_rate", "arrival_rate", "duration_s", "duration"}


def _fmt_setting(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def analyse_run(run: Run) -> Cell:
    """Reduce one run's attempts to its metrics, out of core (loadgen.report.reduce): memory stays
    bounded whatever the number of attempts."""
    n, commit_ms, trips = run_statements(run)
    r = reduce_attempts(
        run.attempt_files(REQUIRED),
        all_harmful=engine_takes_locks(run),
        window=(lambda lat: A.snapshot_window_ms(lat, n, commit_ms, before=trips)) if n is not None else None,
    )
    collision, source = collision_for(run)
    s = r.fit
    fit = fit_from(
        run,
        r.headline,
        collision,
        committed=s.committed,
        committed_mean_ms=s.committed_latency_ms / s.committed if s.committed else None,
        harmful=s.harmful,
        window_mean_ms=s.harmful_window_ms / s.harmful if s.harmful else None,
    )
    return Cell(
        run=run,
        headline=r.headline,
        timeline=r.timeline,
        distribution=r.distribution,
        hot_keys=r.hot_keys,
        by_attempt=r.by_attempt,
        collision=collision,
        collision_source=source,
        model_rate=fit.model_rate,
        fit=fit,
        faults=faults_on_timeline(run.meta.get("faults"), r.t0_ms),
        failures=by_step_batches(run.attempt_files(REQUIRED)),
    )


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


def flat_settings(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as one level: {"retry": {"backoff": "none"}} -> {"retry.backoff": "none"} (lists as tuples)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_settings(v, key + "."))
        elif isinstance(v, list):
            out[key] = tuple(v)
        else:
            out[key] = v
    return out


def varying_settings(runs: list[Run]) -> list[str]:
    """Scenario settings (dotted names) whose values differ between runs, accounts and users first."""
    flats = [flat_settings(r.scenario) for r in runs]
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
        flat = flat_settings(run.scenario)
        cell.settings = {k: flat.get(k) for k in keys}
        cells.append(cell)
    # The talk's load (the hot-spot axis and its baseline) first, then the concurrency axis.
    cells.sort(
        key=lambda c: (c.axis == "concurrency", c.series if c.axis != "concurrency" else "", c.users or 0, c.series, c.accounts or 0)
    )
    return cells


def find_baseline(cells: list[Cell]) -> Cell | None:
    """The cell that replays the talk's conditions (the one with most attempts if several); None without one.

    A closed loop of 1,000 users is not it: about 1,000 transactions in flight where the talk had about 18."""
    found = [c for c in cells if c.is_baseline]
    return max(found, key=lambda c: c.headline["attempts"]) if found else None


def cells_frame(cells: list[Cell], baseline: Cell | None = None) -> pd.DataFrame:
    """One row per cell with its key numbers and ratios to the baseline.

    Without a measured baseline cell, ratios are to the published DSQL figure on the same definition
    (the talk's immediate-retry row: 735 conflicts / 10,735 attempts, 6.85%); attempts per commit and
    throughput ratios are then left out.
    ``goodput`` and ``goodput_ratio`` are older names of ``throughput_commits_per_s`` and
    ``throughput_ratio``, kept for notebooks written against them.
    """
    rows = []
    base_rate = baseline.headline["conflict_rate"] if baseline else TALK_RETRY.conflict_rate
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
                "load": c.load,
                "axis": c.axis,
                "closed_loop": str(c.run.scenario.get("load", "closed")) == "closed",
                "attempts": h["attempts"],
                "commits": h["commits"],
                "conflict_rate": h["conflict_rate"],
                "attempts_per_commit": h["attempts_per_commit"],
                "retried_share": h["retried_share"],
                "throughput_commits_per_s": h["throughput_commits_per_s"],
                "goodput": h["throughput_commits_per_s"],
                "model_rate": c.model_rate,
                "model_applies": bool(c.fit and c.fit.not_applicable is None),
                # Why the cell's figures describe something else (a saturated machine, queueing): flagged beside them.
                "caveat": c.fit.not_applicable.split(":")[0] if c.fit and c.fit.not_applicable else "",
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
        name = c.label if len(cells) > 1 else "this run"
        # The run's own warnings, as run.json lists them (loadgen.results.warnings), on the report's figures.
        out += run_warnings({**c.run.meta, "summary": c.headline}, name)
    elapsed = [c.headline["elapsed_s"] for c in cells if c.headline["elapsed_s"] > 0]
    if len(elapsed) > 1 and max(elapsed) > 1.5 * min(elapsed):
        out.append(
            f"cells ran for very different durations ({min(elapsed):.1f} s to {max(elapsed):.1f} s): "
            "warm-up and ramp-up weigh differently in each, so compare their rates with care."
        )
    return out
