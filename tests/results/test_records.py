"""The results format's owners (no database): the attempt record, run.json and sweep.json, target capabilities."""

from __future__ import annotations

import ast
import json
from dataclasses import FrozenInstanceError
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from repo import PACKAGE

from loadgen.errors import ConfigError
from loadgen.model import attempt as attempt_module
from loadgen.model.attempt import ATTEMPT_FIELDS, Attempt
from loadgen.results import rundir
from loadgen.results.recorder import ATTEMPT_SCHEMA, ATTEMPTS_FORMAT, ATTEMPTS_FORMAT_KEY, AttemptRecorder, write_attempts
from loadgen.results.records import RUN_FORMAT, SWEEP_FORMAT, FormatError, RecordError, RunRecord, SweepRecord
from loadgen.results.sections import ClusterMetric, Summary
from loadgen.targets.base import PostgresTarget, Target
from loadgen.targets.spec import TargetSpec, make_target

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


def test_a_field_this_version_does_not_know_survives_a_round_trip(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"format": RUN_FORMAT, "run_id": "r", "scenario": {}, "target": {}, "later": [1]}))
    record = RunRecord.read(tmp_path)
    assert record.format == RUN_FORMAT and record.extra == {"later": [1]}
    assert record.to_dict()["later"] == [1]


@pytest.mark.parametrize("found", [RUN_FORMAT + 1, "2.0", None, True, 0], ids=["newer", "text", "null", "bool", "zero"])
@pytest.mark.parametrize("kind", [RunRecord, SweepRecord])
def test_a_newer_or_unknown_format_is_refused_by_name(tmp_path: Path, kind: type, found: object) -> None:
    doc = {"run_id": "r", "name": "s", "scenario": {}, "target": {}, "format": found}
    (tmp_path / kind.FILE).write_text(json.dumps(doc))
    if found is None:  # "format": null reads as a file from before the field existed: the first layout
        assert kind.read(tmp_path).format == kind.FORMAT
        return
    with pytest.raises(FormatError, match=f"{kind.FILE}: .*format") as e:
        kind.read(tmp_path)
    assert "\n" not in str(e.value) and not isinstance(e.value, RecordError)  # one line; never "unreadable, replace it"


def test_an_older_run_json_is_read_and_upgraded(tmp_path: Path) -> None:
    # Written before run.json had a format field: read as the first layout, written back as this one.
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "old", "scenario": {"accounts": 5}, "target": {}, "completed": True}))
    record = RunRecord.read(tmp_path)
    assert (record.run_id, record.scenario, record.completed, record.format) == ("old", {"accounts": 5}, True, RUN_FORMAT)
    record.write(tmp_path)
    assert json.loads((tmp_path / "run.json").read_text())["format"] == RUN_FORMAT


def test_sections_read_back_typed_and_keep_what_they_do_not_know() -> None:
    summary = {"attempts": 10, "conflict_rate": 0.2, "outcomes": {"committed": 8}, "attempt_latency_ms": {"p50": 1.5, "p99.9": 9.0}}
    record = _record(
        summary={**summary, "new_figure": 7},
        client={"busiest_process_share": 0.95, "saturated": True, "fixed_cost_s": {"total_s": 2.0}},
        connections={"opened": 4, "left_open": None},
        keys={"name": "zipf", "s": 1.1, "accounts": 100, "collision_probability": 0.05},
        cc={"mode": "locking", "lock_timeout_ms": None, "isolation": "repeatable-read", "how": "..."},
        lock_waits={"longer_than_ms": 10, "count": 3, "source": "server log"},
        extra={"cut_off": {"last_write": "2026-01-01T00:00:03+00:00", "attempts_on_disk": 10}, "cell": {"label": "users=2"}},
    )
    sections = record.sections
    assert isinstance(sections.summary, Summary)
    assert (sections.summary.attempts, sections.summary.conflict_rate, sections.summary.transactions) == (10, 0.2, None)
    assert sections.summary.attempt_latency_ms.p99_9 == 9.0 and sections.summary.extra == {"new_figure": 7}
    assert sections.summary.to_dict()["attempt_latency_ms"]["p99.9"] == 9.0 and sections.summary.to_dict()["new_figure"] == 7
    assert sections.client.saturated is True and sections.client.fixed_cost_s == {"total_s": 2.0}
    assert (sections.connections.opened, sections.connections.left_open) == (4, None)
    assert sections.invariants is not None and sections.invariants[0].ok and sections.invariants[0].name == "money_conserved"
    assert sections.cut_off is not None and sections.cut_off.attempts_on_disk == 10
    assert sections.cell == {"label": "users=2"}
    assert (sections.keys.name, sections.keys.collision_probability, sections.keys.extra) == ("zipf", 0.05, {"s": 1.1})
    assert (sections.cc.mode, sections.cc.lock_timeout_ms) == ("locking", None)
    assert sections.lock_waits is not None and sections.lock_waits.count == 3
    with pytest.raises(FrozenInstanceError):
        sections.summary.attempts = 11  # type: ignore[misc]
    bare = RunRecord(run_id="r", scenario={}, target={}).sections  # a run in progress: nothing yet, not an error
    assert bare.summary.attempts is None and bare.invariants == () and bare.cut_off is None and bare.lock_waits is None


def test_the_clusters_counters_read_back_typed_and_as_written() -> None:
    written = {
        "source": "CloudWatch AWS/AuroraDSQL, ClusterId=abc",
        "window": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-01T00:02:00+00:00", "period_s": 60, "minutes": 2},
        "measured": {"start": "2026-01-01T00:00:05+00:00", "end": "2026-01-01T00:01:55+00:00"},
        "metrics": {
            "OccConflicts": {"value": 41.0, "unit": "Count", "stat": "Sum", "minutes_with_data": 2},
            "TotalDPU": {"value": None, "unit": "None", "stat": "Sum", "minutes_with_data": 0},
        },
        "note": "1 of 2 minutes published when read",
    }
    found = _record(extra={"cluster_metrics": written}).sections.cluster_metrics
    assert found is not None and isinstance(found.metrics["OccConflicts"], ClusterMetric)
    assert (found.value("OccConflicts"), found.value("TotalDPU"), found.value("ReadDPU")) == (41.0, None, None)
    assert found.window["minutes"] == 2 and found.note == written["note"] and found.unavailable is None
    assert found.to_dict() == written
    refused = _record(extra={"cluster_metrics": {"unavailable": "no credentials"}}).sections.cluster_metrics
    assert refused is not None and refused.unavailable == "no credentials" and refused.metrics == {}
    assert _record().sections.cluster_metrics is None  # every target but DSQL


def test_attempts_parquet_carries_its_format_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    rec = AttemptRecorder("run-x")
    rec.add(ROW, user=1)
    write_attempts(rec.to_table(), tmp_path / "attempts.parquet")
    schema = pq.read_schema(tmp_path / "attempts.parquet")
    assert schema.metadata[ATTEMPTS_FORMAT_KEY] == str(ATTEMPTS_FORMAT).encode()
    assert rundir.read_attempts(tmp_path).num_rows == 1
    # A file from before the format was recorded reads as the first layout.
    pq.write_table(rec.to_table().replace_schema_metadata(None), tmp_path / "attempts.parquet")
    assert rundir.read_attempts(tmp_path, ["txn_id", "outcome"]).num_rows == 1
    newer = rec.to_table().replace_schema_metadata({ATTEMPTS_FORMAT_KEY: str(ATTEMPTS_FORMAT + 1).encode()})
    pq.write_table(newer, tmp_path / "attempts.parquet")
    for read in (lambda: rundir.read_attempts(tmp_path), lambda: rundir.read_attempts(tmp_path, ["txn_id"])):
        with pytest.raises(FormatError, match="attempts.parquet: format 2 is newer"):
            read()


def test_unreadable_run_json_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("[1, 2")
    with pytest.raises(RecordError, match="cannot read"):
        RunRecord.read(tmp_path)


def test_sweep_json_round_trips(tmp_path: Path) -> None:
    sweep = SweepRecord(name="s", sweep_keys=["users"], cells=[{"slug": "a", "status": "done"}], completed=True)
    sweep.write(tmp_path)
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert (doc["format"], doc["kind"], doc["cells"][0]["status"]) == (SWEEP_FORMAT, "sweep", "done")
    assert SweepRecord.read(tmp_path) == sweep


def test_a_plain_target_declares_every_capability_absent() -> None:
    target = PostgresTarget("postgresql://u@h/db")
    assert isinstance(target, Target)
    assert (target.dialect, target.connect_kwargs, target.connection_class, target.max_lifetime_s) == ("postgresql", None, None, None)
    assert (target.restart, target.audit, target.truncates) == (None, None, True)
    # A worker makes it from its spec: the DSN without a password (there is none here), the default schema.
    assert target.worker_options(2) == {"kind": "postgres", "dsn": "user=u dbname=db host=h", "schema": "loadgen"}


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
        make_target(TargetSpec("dsql"))


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


def test_a_format_1_run_json_reads_with_one_conflict_rate(tmp_path: Path) -> None:
    """Format 1 had two rates (40001-only ``conflict_rate``, full ``contention_rate``); read back, the full one is the rate."""
    old = {
        "format": 1, "run_id": "r1", "scenario": {}, "target": {},
        "summary": {"attempts": 10, "commits": 6, "conflicts": 1, "contention": 4, "conflict_rate": 0.1, "contention_rate": 0.4,
                    "contention_by_kind": {"conflict": 1, "lock_timeout": 3}, "outcomes": {"committed": 6, "conflict": 1, "lock_timeout": 3}},
    }  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps(old))
    record = RunRecord.read(tmp_path)
    assert record.summary["conflict_rate"] == 0.4 and record.summary["conflicts"] == 4 and "contention_rate" not in record.summary
    assert record.format == RUN_FORMAT == 2  # upgraded: written back, it is a format-2 file
