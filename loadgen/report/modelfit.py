"""The first-order conflict model fitted to one cell, and whether it applies there at all.

DESIGN.md's model: an attempt whose snapshot-to-COMMIT window lasts D sees about
lambda x D other commits (lambda the commit rate), each sharing one of its rows with
probability c, so it fails by contention with probability 1 - (1 - c)^(lambda D).

What D is matters: it is the window in which another commit can hurt, from the
attempt's snapshot (its first statement reaching the server) to its COMMIT reaching
the server, not the whole attempt (which also holds BEGIN, the first statement's trip
out and, before the connection was split out, the wait for a pooled connection).
The best the records allow: each attempt's database time (``latency_ms``, which
excludes the wait for a connection) cut to the round trips inside the window
(``analysis.snapshot_window_ms``). Whose windows count: on DSQL only the committing
transactions can make another fail (and under cc occ's first-committer-wins too); on
PostgreSQL in nowait mode (loadgen's occ before issue 20) every attempt holds its
row locks until it ends, so a doomed one makes others fail too, and at high
contention that matters (100 accounts x 40 users: measured / model 1.45 counting
commits only, 0.92 counting every attempt). What it is compared with: the conflict rate
(loadgen.results.metrics: 40001, 40P01 and 55P03 alike, one of two overlapping writers failed).

Where it does not apply, the fit says so instead of fitting: PostgreSQL's locking mode
(attempts wait on row locks, and a wait resolves a conflict without a failure), a
saturated load generator (attempt times are client queueing), an open loop that
could not start its arrivals on time (the rate is the client's limit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loadgen.model.occsim import statements
from loadgen.model.outcomes import COMMITTED as COMMITTED_OUTCOMES
from loadgen.report import analysis as A
from loadgen.report.data import Run
from loadgen.results.client import SATURATED_SHARE, busiest_share
from loadgen.results.warnings import distortion

__all__ = [
    "ModelFit",
    "fit_model",
    "not_applicable",
    "cc_mode",
    "engine_takes_locks",
    "snapshot_at_begin",
    "runs_occ_form",
    "MIN_RATE",
    "TOLERANCE",
]
#: The fit is judged on cells with at least this conflict rate (below, a handful of failures decide).
MIN_RATE = 0.01
#: The model "fits" a cell when measured / model is within this share of 1.
TOLERANCE = 0.3


@dataclass(frozen=True)
class ModelFit:
    """The model's inputs and answer for one cell, beside the measured conflict rate."""

    commit_rate: float | None  # lambda: commits/s (DSQL) or attempts/s (PostgreSQL: every writer holds locks)
    window_ms: float | None  # D: mean snapshot-to-COMMIT window of those transactions
    attempt_ms: float | None  # mean whole committed attempt (database time), for comparison
    window_source: str
    collision: float | None  # c
    model_rate: float | None
    measured_rate: float | None  # the conflict rate (loadgen.results.metrics)
    #: Why the model does not describe this cell (None: it should).
    not_applicable: str | None

    @property
    def ratio(self) -> float | None:
        """measured / model."""
        if self.model_rate is None or self.measured_rate is None or self.model_rate == 0:
            return None
        return self.measured_rate / self.model_rate

    @property
    def judged(self) -> bool:
        """The model applies and the cell has enough contention to judge it by."""
        return self.not_applicable is None and self.ratio is not None and (self.measured_rate or 0) >= MIN_RATE

    @property
    def fits(self) -> bool | None:
        """Within the tolerance; None when the cell is not judged."""
        if not self.judged:
            return None
        assert self.ratio is not None
        return abs(self.ratio - 1.0) <= TOLERANCE + 1e-9  # 1.3 is inside, floating point or not


def _number(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


def _find(doc: Any, key: str) -> Any:
    if isinstance(doc, dict):
        if key in doc:
            return doc[key]
        for v in doc.values():
            found = _find(v, key)
            if found is not None:
                return found
    return None


def cc_mode(run: Run) -> str:
    """occ, nowait or locking: as run.json records it, else as the scenario implies (runs before --cc)."""
    mode = run.sections.cc.mode
    if mode in ("occ", "nowait", "locking"):
        return str(mode)
    scen = run.scenario
    if scen.get("cc") in ("occ", "nowait", "locking"):
        return str(scen["cc"])
    kind = str(run.target.get("kind", ""))
    if kind in ("embedded", "postgres") and not scen.get("lock_timeout_ms"):
        return "locking"  # before --cc, PostgreSQL waited on row locks unless told otherwise
    return "occ"


def not_applicable(run: Run) -> str | None:
    """Why neither the model nor the simulation describes this run, in one sentence; None if they should."""
    if cc_mode(run) == "locking":
        return (
            "locking mode: attempts wait on row locks (their time is queueing) and a wait resolves a conflict "
            "without a failure, so the model counts failures that never happen"
        )
    client = run.meta.get("client")
    cpu = busiest_share(client if isinstance(client, dict) else None)
    if cpu is not None and cpu >= SATURATED_SHARE:
        return f"saturated client: the load generator used {cpu:.0%} of a core, so attempt times include its own queueing"
    if _find(run.meta, "kept_up") is False:
        return "open loop fell behind: it could not start its arrivals on time (see the warnings), so the rate is the client's limit"
    return distortion(run.meta)  # a saturated machine, or attempts far slower than lightly loaded


def snapshot_at_begin(run: Run) -> bool:
    """Whether the run's transactions took their snapshot at BEGIN (run.json's cc says; DSQL always does)."""
    snapshot = run.sections.cc.snapshot
    if snapshot is not None:
        return snapshot == "begin"
    return run.target.get("kind") == "dsql"


def runs_occ_form(run: Run) -> bool:
    """Whether the run's transfers took loadgen.db.occ's first-committer-wins form (cc occ on PostgreSQL)."""
    cc = run.sections.cc
    return cc.mode == "occ" and cc.snapshot == "begin" and run.target.get("kind") != "dsql"


def engine_takes_locks(run: Run) -> bool:
    """Whether a transaction holds row locks while it runs (PostgreSQL's own statements; not DSQL, nor cc occ's first-committer-wins)."""
    return not snapshot_at_begin(run)


def fit_model(run: Run, c: pd.DataFrame, headline: dict[str, Any], collision: float | None) -> ModelFit:
    """The model on one run's compact attempts frame (``data.compact``) and headline (see :func:`fit_from`)."""
    n, commit_ms, trips = run_statements(run)
    committed = c["outcome"].isin(COMMITTED_OUTCOMES).to_numpy()
    locks = engine_takes_locks(run)
    harmful = np.ones_like(committed) if locks else committed
    latency = c["latency_ms"].to_numpy(dtype="float64")[harmful]
    committed_latency = c["latency_ms"].to_numpy(dtype="float64")[committed]
    window = A.snapshot_window_ms(latency, n, commit_ms, before=trips) if n is not None else latency
    return fit_from(
        run,
        headline,
        collision,
        committed=int(committed_latency.size),
        committed_mean_ms=float(committed_latency.mean()) if committed_latency.size else None,
        harmful=int(latency.size),
        window_mean_ms=float(np.mean(window)) if latency.size else None,
    )


def run_statements(run: Run) -> tuple[int | None, float, int]:
    """The run's statements per attempt (None: a shape the model does not know), COMMIT's extra time,
    and the round trips before the snapshot (1 when it is taken at BEGIN, else 2)."""
    scen = run.scenario
    shape = str(scen.get("transaction", "update-returning"))
    legs = int(_number(scen.get("legs")) or 2) if shape == "multi-leg" else 1
    return statements(shape, legs, runs_occ_form(run)), _number(scen.get("commit_ms")), 1 if snapshot_at_begin(run) else 2


def fit_from(
    run: Run,
    headline: dict[str, Any],
    collision: float | None,
    *,
    committed: int,
    committed_mean_ms: float | None,
    harmful: int,
    window_mean_ms: float | None,
) -> ModelFit:
    """The model from what it takes of the attempts: the committed attempts' mean latency, and the
    mean snapshot window of the attempts that can make another fail (``harmful`` of them).

    Which transactions can make an attempt fail: on DSQL (first committer wins) only
    those that commit, so lambda is the commit rate (so under cc occ); on PostgreSQL in nowait mode (first
    *updater* wins) every attempt holds its rows' locks until it ends, a doomed one too,
    so lambda is the attempt rate and D the mean window of all attempts. lambda x D is
    then the mean number of such windows open at once, measured directly.
    """
    n, commit_ms, trips = run_statements(run)
    locks = engine_takes_locks(run)
    attempt_ms = committed_mean_ms if committed else None
    who = "all attempts (PostgreSQL: a failing one holds its row locks too)" if locks else "committed attempts (first committer wins)"
    window_ms = window_mean_ms if harmful else None
    if harmful and n is not None:
        source = f"{n + 2 - trips} of {n + 2} round trips of {who}" + (f", plus COMMIT's {commit_ms:g} ms" if commit_ms else "")
    else:
        source = f"whole attempts of {who} (shape not modelled)"
    elapsed = headline["elapsed_s"]
    lam = (harmful / elapsed if elapsed > 0 else None) if locks else headline["throughput_commits_per_s"]
    model = None
    if collision is not None and lam and window_ms is not None:
        model = A.model_conflict_rate(lam, window_ms / 1000.0, collision)
    return ModelFit(
        commit_rate=lam,
        window_ms=window_ms,
        attempt_ms=attempt_ms,
        window_source=source,
        collision=collision,
        model_rate=model,
        measured_rate=headline["conflict_rate"],
        not_applicable=not_applicable(run),
    )
