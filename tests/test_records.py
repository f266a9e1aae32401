"""The results format's owners (no database): the attempt record, run.json and sweep.json, target capabilities."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from loadgen.errors import ConfigError
from loadgen.model import attempt as attempt_module
from loadgen.model.attempt import ATTEMPT_FIELDS, Attempt
from loadgen.results.recorder import ATTEMPT_SCHEMA, AttemptRecorder
from loadgen.results.records import RUN_FORMAT, RecordError, RunRecord, SweepRecord
from loadgen.targets.base import PostgresTarget, Target, make_target

PACKAGE = Path(__file__).resolve().parent.parent / "loadgen"

ROW = ("t-1", 2, 1_700_000_000.25, 3.5, "conflict", "40001", "OC000", 4, 7, 1, 5.0, False, 0.25, "commit")


def test_each_index_constant_names_its_field() -> None:
    for name in ATTEMPT_FIELDS:
        assert getattr(attempt_module, name.upper()) == ATTEMPT_FIELDS.index(name)
    row = Attempt._make(ROW)
    assert (row.outcome, row.sqlstate, row.payee) == (ROW[attempt_module.OUTCOME], "40001", 7)


def test_attempts_parquet_has_every_attempt_field_and_where_it_ran() -> None:
    names = ATTEMPT_SCHEMA.names
    assert set(ATTEMPT_FIELDS) <= set(names)
    # The data contract's columns (DESIGN.md), in their order, then where the attempt ran.
    assert names[:6] == ["run_id", "txn_id", "attempt", "started_at", "latency_ms", "outcome"]
    assert {"user", "worker", "cell"} <= set(names)


def test_the_recorder_names_fields_and_tags_the_cell() -> None:
    rec = AttemptRecorder("run-x", worker="w1", cell="c-3")
    rec.add(ROW, user=9)
    assert rec.attempts() == [Attempt._make(ROW)]
    table = rec.to_table()
    assert table.schema == ATTEMPT_SCHEMA
    row = table.to_pylist()[0]
    assert (row["run_id"], row["outcome"], row["user"], row["worker"], row["cell"]) == ("run-x", "conflict", 9, "w1", "c-3")
    assert AttemptRecorder("run-y").to_table().schema == ATTEMPT_SCHEMA  # empty, same columns


def _record(**changes: object) -> RunRecord:
    base: dict = dict(
        run_id="run-1",
        scenario={"accounts": 10},
        target={"kind": "embedded"},
        started_at="2026-01-01T00:00:00+00:00",
        ended_at="2026-01-01T00:00:05+00:00",
        completed=True,
        summary={"attempts": 3},
        invariants=[{"name": "money_conserved", "ok": True, "detail": ""}],
    )
    base.update(changes)
    return RunRecord(**base)


def test_run_json_round_trips_with_its_format(tmp_path: Path) -> None:
    record = _record(workers=[{"id": "w"}], extra={"cell": {"slug": "a"}, "sweep": None})
    record.write(tmp_path)
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["format"] == RUN_FORMAT and doc["invariants_hold"] is True and doc["cell"] == {"slug": "a"}
    contract = {"run_id", "scenario", "keys", "target", "versions", "machine", "command_line", "started_at", "ended_at"}
    contract |= {"completed", "aborted", "faults", "client", "summary", "locust", "connections", "invariants", "invariants_hold"}
    assert contract <= set(doc)
    again = RunRecord.read(tmp_path)
    assert again == record
    assert again.to_dict() == doc


def test_invariants_hold_is_derived_and_unknown_while_in_progress() -> None:
    broken = _record(invariants=[{"name": "a", "ok": True}, {"name": "b", "ok": False}])
    assert broken.invariants_hold is False
    live = RunRecord(run_id="r", scenario={}, target={}, in_progress=True)
    doc = live.to_dict()
    assert doc["in_progress"] is True and doc["completed"] is False and "invariants_hold" not in doc


def test_a_newer_field_survives_a_round_trip(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"format": 2, "run_id": "r", "scenario": {}, "target": {}, "later": [1]}))
    record = RunRecord.read(tmp_path)
    assert record.format == 2 and record.extra == {"later": [1]}
    assert record.to_dict()["later"] == [1]


def test_unreadable_run_json_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("[1, 2")
    with pytest.raises(RecordError, match="cannot read"):
        RunRecord.read(tmp_path)


def test_sweep_json_round_trips(tmp_path: Path) -> None:
    sweep = SweepRecord(name="s", sweep_keys=["users"], cells=[{"slug": "a", "status": "done"}], completed=True)
    sweep.write(tmp_path)
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert (doc["format"], doc["kind"], doc["cells"][0]["status"]) == (1, "sweep", "done")
    assert SweepRecord.read(tmp_path) == sweep


def test_a_plain_target_declares_every_capability_absent() -> None:
    target = PostgresTarget("postgresql://u@h/db")
    assert isinstance(target, Target)
    assert (target.dialect, target.connect_kwargs, target.connection_class, target.max_lifetime_s) == ("postgresql", None, None, None)
    assert (target.restart, target.audit, target.truncates, target.rebuilt_from_conninfo) == (None, None, True, True)


def test_the_ui_offers_only_targets_make_target_builds() -> None:
    import argparse

    from loadgen.ui.form import UI_TARGETS, add_arguments

    class Parser(argparse.ArgumentParser):
        def add_argument(self, *args: object, include_in_web_ui: bool = True, is_secret: bool = False, **kwargs: object) -> object:
            return super().add_argument(*args, **kwargs)

    parser = Parser()
    add_arguments(parser)
    (action,) = [a for a in parser._actions if a.dest == "target"]
    assert list(action.choices or []) == list(UI_TARGETS) == ["embedded", "postgres"]
    with pytest.raises(ConfigError, match="--endpoint"):
        make_target("dsql")


def _importers(name: str) -> set[str]:
    """Modules that import ``name`` from its module (any depth of the file)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and any(a.name == name for a in node.names):
                found.add(str(path.relative_to(PACKAGE.parent).with_suffix("")).replace("/", "."))
    return found


def test_one_module_resets_the_bank_and_checks_invariants_for_every_kind_of_run() -> None:
    assert _importers("reset") == {"loadgen.engine.session"}
    assert _importers("check_invariants") == {"loadgen.engine.session"}
