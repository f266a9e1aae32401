"""What-if predictions: one measured run, replayed by the OCC simulation at other accounts and users.

A run tells the simulation (``loadgen.model.occsim``) everything but the cell to
predict: its attempts' durations (the empirical distribution of its committed
attempts, each of which ran from start to COMMIT), its key distribution, its
transaction shape (rows written, round trips), its load model and its retry
policy. :func:`predict` then simulates first-committer-wins at each asked cell
and reduces the simulated attempts with the report's own metric functions, so
``conflict_rate`` and ``retries_per_commit`` mean here what they mean for a
measured run.

What it assumes, and so where it does not apply: attempt durations do not change
with the load (true of a database that is not saturated, and of emulated latency
that dominates; false on a saturated client or server), and a conflict is decided
at COMMIT (DSQL); PostgreSQL without lock waits fails the later *updater* at once,
which agrees to first order. In locking mode the durations include lock waits that
the simulation would count a second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from loadgen.errors import ConfigError
from loadgen.model.keys import KeyDistribution, make_distribution
from loadgen.model.occsim import DEFAULT_ATTEMPTS, STATEMENTS, Load, Sampled, SimAttempts, simulate, statements
from loadgen.model.retry import RetryPolicy
from loadgen.model.scenario import Scenario
from loadgen.report import analysis as A
from loadgen.report.cells import Cell, find_baseline
from loadgen.report.data import ReportInputError, Run
from loadgen.report.modelfit import not_applicable, runs_occ_form, snapshot_at_begin
from loadgen.results.outofcore import committed_latencies

__all__ = [
    "SimInputs",
    "Prediction",
    "WhatIf",
    "inputs_from_run",
    "predict",
    "predict_grid",
    "whatif_for",
    "applicability",
]


#: What a run.json that leaves a setting out ran with.
_DEFAULT = Scenario()


@dataclass(frozen=True)
class SimInputs:
    """What one measured run tells the simulation."""

    run_id: str
    accounts: int
    users: int
    distribution: str
    key_params: dict[str, Any]
    load: Load
    policy: RetryPolicy
    read_share: float
    rows_per_txn: int
    #: Statements before COMMIT (an attempt makes two round trips more: BEGIN and COMMIT),
    #: and the run's own emulated latency: mean per round trip, and COMMIT's extra.
    statements: int
    rtt_ms: float
    commit_ms: float
    #: Measured per committed attempt: time before its snapshot, and snapshot to COMMIT (ms).
    before_ms: np.ndarray = field(repr=False)
    window_ms: np.ndarray = field(repr=False)
    #: How ``window_ms`` was measured, in a sentence for the output.
    window_source: str = ""
    #: Round trips up to the snapshot: 2 where the first statement takes it (PostgreSQL's own
    #: path), 1 where BEGIN does (DSQL, cc occ's first-committer-wins).
    snapshot_trips: int = 2

    def keys(self, accounts: int) -> KeyDistribution:
        return make_distribution(self.distribution, accounts, **self.key_params)


@dataclass(frozen=True)
class Prediction:
    """One simulated cell, in the figures a measured run reports."""

    accounts: int
    users: int
    conflict_rate: float | None
    retries_per_commit: float | None
    throughput_commits_per_s: float | None
    retried_share: float | None
    max_attempts: int
    attempts: int
    commits: int
    mean_window_ms: float
    rtt_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "accounts": self.accounts,
            "users": self.users,
            "conflict_rate": self.conflict_rate,
            "retries_per_commit": self.retries_per_commit,
            "throughput_commits_per_s": self.throughput_commits_per_s,
            # The name for the same figure (loadgen predict --json promised it): one value, two keys.
            "goodput_commits_per_s": self.throughput_commits_per_s,
            "retried_share": self.retried_share,
            "max_attempts": self.max_attempts,
            "attempts": self.attempts,
            "commits": self.commits,
            "mean_window_ms": self.mean_window_ms,
            "rtt_ms": self.rtt_ms,
        }


def _number(v: Any, default: float) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default


def _key_params(scen: dict[str, Any], name: str) -> dict[str, Any]:
    if name == "zipf":
        return {"s": _number(scen.get("zipf_s"), _DEFAULT.zipf_s)}
    if name == "hotspot":
        return {"ops": _number(scen.get("hot_ops"), _DEFAULT.hot_ops), "keys": _number(scen.get("hot_keys"), _DEFAULT.hot_keys)}
    if name == "hotset":
        return {"p": _number(scen.get("hotset_p"), _DEFAULT.hotset_p), "k": int(_number(scen.get("hotset_k"), _DEFAULT.hotset_k))}
    return {}


def _policy(scen: dict[str, Any]) -> RetryPolicy:
    retry = scen.get("retry")
    if not isinstance(retry, dict):
        retry = {}
    known = {k: v for k, v in retry.items() if k in ("max_attempts", "deadline_s", "backoff", "base_ms", "cap_ms")}
    try:
        return RetryPolicy(**known)
    except (TypeError, ConfigError) as e:
        raise ReportInputError(f"run.json's retry policy is not usable: {e}") from None


def _load(scen: dict[str, Any], users: int) -> Load:
    model = str(scen.get("load", _DEFAULT.load))
    if model == "open":
        return Load("open", users, arrival_rate=_number(scen.get("arrival_rate"), _DEFAULT.arrival_rate), even=True)
    if model == "batches":
        return Load("batches", users)
    return Load("closed", users, think_ms=_number(scen.get("think_ms"), _DEFAULT.think_ms))


#: Durations the simulation draws from, at most: a long run's are sampled (every k-th committed attempt).
DURATIONS_KEPT = 1_000_000


def inputs_from_run(run: Run, commits: int | None = None) -> SimInputs:
    """The simulation's inputs from one run directory (its run.json and attempts); ``commits``: its committed attempts, if known."""
    scen = run.scenario
    accounts, users = run.accounts, run.users
    if accounts is None or users is None:
        raise ReportInputError(f"{run.path}: run.json does not record accounts and users; cannot predict from it")
    shape = str(scen.get("transaction", _DEFAULT.transaction))
    legs = int(_number(scen.get("legs"), _DEFAULT.legs)) if shape == "multi-leg" else 1
    n_statements = statements(shape, legs, runs_occ_form(run))
    if n_statements is None:
        raise ReportInputError(
            f"{run.path}: predict models transfers ({', '.join(STATEMENTS)}); the run's shape {shape!r} is not one of them"
        )
    # Bounded: a run of tens of millions of attempts lends a systematic sample of its durations.
    latency, committed = committed_latencies(run.attempt_files(("latency_ms", "outcome")), DURATIONS_KEPT, commits)
    if latency.size == 0:
        raise ReportInputError(f"{run.path}: no committed attempt to take durations from")
    commit_ms = _number(scen.get("commit_ms"), 0.0)
    trips = 1 if snapshot_at_begin(run) else 2
    window = A.snapshot_window_ms(latency, n_statements, commit_ms, before=trips)
    dist = str(scen.get("distribution", _DEFAULT.distribution))
    return SimInputs(
        run_id=run.run_id,
        accounts=accounts,
        users=users,
        distribution=dist,
        key_params=_key_params(scen, dist),
        load=_load(scen, users),
        policy=_policy(scen),
        read_share=_number(scen.get("read_mix"), _DEFAULT.read_mix),
        rows_per_txn=1 + legs,
        statements=n_statements,
        rtt_ms=_number(scen.get("rtt_ms"), 0.0) + _number(scen.get("rtt_jitter_ms"), 0.0),
        commit_ms=commit_ms,
        before_ms=latency - window,
        window_ms=window,
        window_source=(
            (
                f"the run's {latency.size:,} committed attempts"
                if latency.size == committed
                else f"{latency.size:,} of the run's {committed:,} committed attempts (one in {-(-committed // DURATIONS_KEPT)})"
            )
            + f" (database time, mean {latency.mean():.2f} ms), of which the "
            f"snapshot-to-COMMIT window is {n_statements + 2 - trips} of {n_statements + 2} round trips"
            + (f" plus COMMIT's extra {commit_ms:g} ms" if commit_ms else "")
            + f" (mean {window.mean():.2f} ms)"
        ),
        snapshot_trips=trips,
    )


def _durations(inputs: SimInputs, rtt_ms: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Measured durations, with ``rtt_ms`` per round trip instead of the run's own emulated latency.

    Two round trips (BEGIN, the first statement) come before the snapshot; the other
    ``statements`` (the later statements, COMMIT) lie in the window (analysis.snapshot_window_ms).
    """
    if rtt_ms is None or rtt_ms == inputs.rtt_ms:
        return inputs.before_ms, inputs.window_ms
    delta = rtt_ms - inputs.rtt_ms
    before = inputs.before_ms + inputs.snapshot_trips * delta
    window = inputs.window_ms + delta * (inputs.statements + 2 - inputs.snapshot_trips)
    if (window < 0).any() or (before < 0).any():
        raise ConfigError(
            f"--rtt-ms {rtt_ms:g} is below what the run measured: its attempts took as little as "
            f"{float((inputs.before_ms + inputs.window_ms).min()):.2f} ms with {inputs.rtt_ms:g} ms emulated per round trip"
        )
    return before, window


def predict(
    inputs: SimInputs,
    accounts: int,
    users: int,
    rtt_ms: float | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    seed: int = 0,
) -> Prediction:
    """Simulate one cell from a run's inputs."""
    if accounts < 2:
        raise ConfigError(f"accounts must be at least 2 (a transfer needs a payer and a payee), got {accounts}")
    if users < 1:
        raise ConfigError(f"users must be at least 1, got {users}")
    if inputs.rows_per_txn > accounts:
        raise ConfigError(f"the run's transactions write {inputs.rows_per_txn} accounts; {accounts} are too few")
    if inputs.distribution == "hotset" and not 2 <= int(inputs.key_params["k"]) < accounts:
        raise ConfigError(f"the run's hot set has {inputs.key_params['k']} accounts: predict needs more than that, got {accounts}")
    before, window = _durations(inputs, rtt_ms)
    sim = simulate(
        inputs.keys(accounts),
        Sampled(before, window, seed=seed),
        replace(inputs.load, users=users),
        inputs.policy,
        attempts=attempts,
        read_share=inputs.read_share,
        rows_per_txn=inputs.rows_per_txn,
        seed=seed,
    )
    return summarize_simulation(sim, accounts, users, float(window.mean()), inputs.rtt_ms if rtt_ms is None else rtt_ms)


def predict_grid(
    inputs: SimInputs,
    accounts: list[int],
    users: list[int],
    rtt_ms: float | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    seed: int = 0,
) -> list[Prediction]:
    """Every accounts x users cell, in that order."""
    return [predict(inputs, a, u, rtt_ms, attempts, seed) for a in accounts for u in users]


def sim_frame(sim: SimAttempts) -> pd.DataFrame:
    """Simulated attempts as the report frame (``data.report_frame``), payer and payee left out."""
    n = len(sim)
    return pd.DataFrame(
        {
            "txn": sim.txn,
            "attempt": sim.attempt,
            "start_ms": sim.start_ms,
            "end_ms": sim.end_ms,
            "latency_ms": sim.end_ms - sim.start_ms,
            "outcome": pd.Categorical(sim.outcome),
            "payer": np.zeros(n, "int64"),
            "payee": np.zeros(n, "int64"),
        }
    )


def summarize_simulation(sim: SimAttempts, accounts: int, users: int, mean_window_ms: float, rtt_ms: float) -> Prediction:
    """A simulation's figures through the report's metric functions.

    Throughput divides by the measured period rather than first start to last end: the
    measured attempts are those that *started* in the period, and the last of them
    run past its end, which in a short simulated period would dilute the rate.
    """
    c = sim_frame(sim)
    h = A.headline(c, A.transactions(c))
    period = sim.period_s
    return Prediction(
        accounts=accounts,
        users=users,
        conflict_rate=h["conflict_rate"],
        retries_per_commit=h["retries_per_commit"],
        throughput_commits_per_s=h["commits"] / period if period > 0 else None,
        retried_share=h["retried_share"],
        max_attempts=h["max_attempts"],
        attempts=h["attempts"],
        commits=h["commits"],
        mean_window_ms=mean_window_ms,
        rtt_ms=rtt_ms,
    )


#: Attempts per cell in the report's what-if section: a few seconds for a whole grid, rates within about +-6%.
REPORT_ATTEMPTS = 5_000
#: The simulation's own cell is "reproduced" when it lands within this share of the measured rate.
CALIBRATION_TOLERANCE = 0.3


@dataclass(frozen=True)
class WhatIf:
    """The report's what-if section: predictions from one source cell, checked against that cell."""

    source: Cell
    inputs: SimInputs | None
    #: The source cell as the simulation sees it, beside what was measured there.
    own: Prediction | None
    cells: list[Prediction]
    #: Why predictions from this run may not hold, one sentence each.
    caveats: list[str]


def _grid(n: int, k: int) -> list[int]:
    return sorted({max(k, n // 10), n, n * 10})


def whatif_for(cells: list[Cell], attempts: int = REPORT_ATTEMPTS, seed: int = 0) -> WhatIf | None:
    """Predictions around the baseline cell (or the cell with most commits): a tenth and ten times
    its accounts, and (closed loop, batches) half and twice its users."""
    candidates = [c for c in cells if c.headline["commits"] and c.accounts and c.users]
    if not candidates:
        return None
    source = find_baseline(candidates) or max(candidates, key=lambda c: c.headline["commits"])
    caveats = applicability(source)
    try:
        inputs = inputs_from_run(source.run, source.headline["commits"])
    except ReportInputError as e:
        return WhatIf(source, None, None, [], [*caveats, str(e)])
    assert source.accounts is not None and source.users is not None
    own = predict(inputs, source.accounts, source.users, attempts=attempts, seed=seed)
    measured = source.headline["conflict_rate"]
    if own.conflict_rate and measured is not None and abs(measured / own.conflict_rate - 1) > CALIBRATION_TOLERANCE:
        caveats.append(
            f"Simulated at its own settings, this cell gives {own.conflict_rate:.2%} against {measured:.2%} measured "
            f"(measured / simulated {measured / own.conflict_rate:.2f}): the predictions below inherit that error."
        )
    grid = []
    low = max(inputs.rows_per_txn + 1, int(inputs.key_params.get("k", 0)) + 1)
    # An open loop's users only bound how many are in flight: its grid varies the accounts alone.
    users = [source.users] if inputs.load.model == "open" else sorted({max(1, source.users // 2), source.users, source.users * 2})
    for a in _grid(source.accounts, low):
        for u in users:
            try:
                grid.append(own if (a, u) == (source.accounts, source.users) else predict(inputs, a, u, attempts=attempts, seed=seed))
            except ConfigError:
                continue
    return WhatIf(source, inputs, own, grid, caveats)


def applicability(cell: Cell) -> list[str]:
    """Where the simulation does not describe this run (the same places as the first-order model)."""
    why = not_applicable(cell.run)
    return [f"Predictions from this run do not hold: {why}."] if why else []
