"""Where the first-order model applies, and how a cell's fit is judged. No database."""

from __future__ import annotations

from pathlib import Path

from loadgen.report.data import Run
from loadgen.report.modelfit import ModelFit, cc_mode, engine_takes_locks, not_applicable, runs_occ_form


def run(**meta: object) -> Run:
    return Run(path=Path("r"), meta=dict(meta))


def fit(model: float | None, measured: float | None, why: str | None = None) -> ModelFit:
    return ModelFit(100.0, 10.0, 15.0, "", 0.004, model, measured, why)


def test_locking_mode_is_not_modelled() -> None:
    assert cc_mode(run(cc={"mode": "locking"})) == "locking"
    assert "locking mode" in (not_applicable(run(cc={"mode": "locking"})) or "")
    assert not_applicable(run(cc={"mode": "occ"})) is None
    # Before --cc: PostgreSQL without a lock timeout waited on row locks; with one it did not.
    assert cc_mode(run(target={"kind": "embedded"}, scenario={})) == "locking"
    assert cc_mode(run(target={"kind": "embedded"}, scenario={"lock_timeout_ms": 1})) == "occ"
    assert cc_mode(run(target={"kind": "dsql"}, scenario={})) == "occ"


def test_where_the_snapshot_is_taken_comes_from_run_json_cc() -> None:
    """cc's typed ``snapshot`` (loadgen.results.sections): cc occ on PostgreSQL takes it at BEGIN and holds no row lock."""
    occ = run(cc={"mode": "occ", "snapshot": "begin"}, target={"kind": "embedded"})
    nowait = run(cc={"mode": "nowait", "snapshot": "first statement"}, target={"kind": "embedded"})
    assert (runs_occ_form(occ), engine_takes_locks(occ)) == (True, False)
    assert (runs_occ_form(nowait), engine_takes_locks(nowait)) == (False, True)
    dsql = run(cc={"mode": "occ", "snapshot": "begin"}, target={"kind": "dsql"})
    assert (runs_occ_form(dsql), engine_takes_locks(dsql)) == (False, False)  # DSQL's own OCC, not loadgen.db.occ's form
    assert engine_takes_locks(run(target={"kind": "dsql"})) is False  # older run.json: no snapshot recorded


def test_a_saturated_client_is_not_modelled() -> None:
    assert "saturated client" in (not_applicable(run(cc={"mode": "occ"}, client={"cpu_utilization": 0.95})) or "")
    assert not_applicable(run(cc={"mode": "occ"}, client={"cpu_utilization": 0.5})) is None
    late = run(cc={"mode": "occ"}, workload={"open_loop": {"kept_up": False}})
    assert "could not start its arrivals" in (not_applicable(late) or "")


def test_a_fit_is_judged_only_where_it_applies_and_contention_is_at_least_one_percent() -> None:
    assert fit(0.10, 0.08).fits is True  # 0.8
    assert fit(0.10, 0.06).fits is False  # 0.6
    assert fit(0.10, 0.13).fits is True  # 1.3: the edge is inside
    assert fit(0.01, 0.005).fits is None  # below 1%: a handful of failures decide
    assert fit(0.10, 0.05, why="locking mode: ...").fits is None
    assert fit(None, 0.05).ratio is None and fit(None, 0.05).fits is None
