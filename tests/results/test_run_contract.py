"""The run directory as a contract (no database): one reader that checks each file's format,
a killed run recovered only on purpose, and the report's headline being run.json's summary.

The run directories here are written by loadgen's own writers (AttemptRecorder,
write_attempts, RunRecord, SweepRecord, metrics.summarize), as a run writes them.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loadgen.cli.main import main
from loadgen.model.scenario import Scenario
from loadgen.report.cells import analyse_run
from loadgen.report.data import load_run, load_study
from loadgen.results import rundir
from loadgen.results.metrics import summarize, summary_frame
from loadgen.results.recorder import AttemptRecorder, write_attempts
from loadgen.results.records import FormatError, RunRecord, SweepRecord
from loadgen.results.stream import PARTS_DIR

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SCENARIO = {"accounts": 100, "users": 4, "distribution": "uniform"}


def _attempts(run_id: str, n: int = 60) -> AttemptRecorder:
    """``n`` transfers over 4 users: every fifth conflicts once and commits on its retry."""
    rec = AttemptRecorder(run_id)
    for i in range(n):
        txn, start = str(uuid.uuid4()), T0 + 0.01 * i
        if i % 5 == 0:
            rec.add((txn, 1, start, 4.0, "conflict", "40001", None, i % 7, 1 + i % 5, 1, 0.0, False, 0.0, "commit"), i % 4)
            rec.add((txn, 2, start + 0.005, 3.0, "committed", None, None, i % 7, 1 + i % 5, 1, 1.0, False, 0.0, None), i % 4)
        else:
            rec.add((txn, 1, start, 2.0 + i % 3, "committed", None, None, i % 7, 1 + i % 5, 1, 0.0, False, 0.0, None), i % 4)
    return rec


def write_run(directory: Path) -> Path:
    """A finished run's directory, written as ``loadgen run`` writes one."""
    directory.mkdir(parents=True)
    table = _attempts(directory.name).to_table()
    write_attempts(table, directory / rundir.ATTEMPTS_FILE)
    RunRecord(
        run_id=directory.name,
        scenario=SCENARIO,
        target={"kind": "embedded"},
        completed=True,
        status="completed",
        summary=summarize(summary_frame(table)),
        invariants=[{"name": "money_conserved", "ok": True, "detail": ""}],
    ).write(directory)
    return directory


def write_killed_run(directory: Path) -> Path:
    """A run killed mid-way: run.json as written at its start, attempts in a part file, nobody writing."""
    directory.mkdir(parents=True)
    RunRecord(run_id=directory.name, scenario=SCENARIO, target={"kind": "embedded"}, status="running", in_progress=True).write(directory)
    (directory / PARTS_DIR).mkdir()
    pq.write_table(_attempts(directory.name, 30).to_table(), directory / PARTS_DIR / "part-000001.parquet")
    return directory


def _set_format(path: Path, value: object) -> None:
    doc = json.loads(path.read_text())
    doc["format"] = value
    path.write_text(json.dumps(doc))


def _one_line_about_format(err: str, file: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and file in lines[0] and "format" in lines[0] and "Traceback" not in err, err


@pytest.mark.slow
@pytest.mark.parametrize("value", [99, "two"], ids=["newer", "unknown"])
def test_report_and_predict_refuse_a_run_json_of_unknown_format(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: object) -> None:
    run = write_run(tmp_path / "run-a")
    predict = ["predict", str(run), "--accounts", "100", "--users", "4", "--attempts", "200"]
    assert main(["report", str(run), "-o", str(tmp_path / "before.html")]) == 0  # the same run reads with its own format
    assert main(predict) == 0
    capsys.readouterr()
    _set_format(run / "run.json", value)
    before = (run / "run.json").read_bytes()
    assert main(["report", str(run), "-o", str(tmp_path / "after.html")]) == 2
    _one_line_about_format(capsys.readouterr().err, "run.json")
    assert main(predict) == 2
    _one_line_about_format(capsys.readouterr().err, "run.json")
    assert (run / "run.json").read_bytes() == before and not (tmp_path / "after.html").exists()


def test_report_refuses_attempts_parquet_of_a_newer_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "run-a")
    table = pq.read_table(run / rundir.ATTEMPTS_FILE)
    pq.write_table(table.replace_schema_metadata({b"loadgen.attempts_format": b"7"}), run / rundir.ATTEMPTS_FILE)
    assert main(["report", str(run), "-o", str(tmp_path / "r.html")]) == 2
    _one_line_about_format(capsys.readouterr().err, "attempts.parquet")


@pytest.mark.parametrize("newer", ["cell", "sweep"])
def test_resume_refuses_a_sweep_holding_a_file_of_unknown_format(tmp_path: Path, capsys: pytest.CaptureFixture[str], newer: str) -> None:
    sweep = tmp_path / "sweep-s"
    done = write_run(sweep / "users-4")
    cell = {"index": 0, "label": "users=4", "slug": "users-4", "settings": {"users": 4}, "scenario": Scenario(users=4).to_dict()}
    todo = {**cell, "index": 1, "label": "users=8", "slug": "users-8", "settings": {"users": 8}, "scenario": Scenario(users=8).to_dict()}
    SweepRecord(
        name="s", sweep_keys=["users"], cells=[{**cell, "status": "done", "run_dir": done.name}, {**todo, "status": "not run"}]
    ).write(sweep)
    _set_format(done / "run.json" if newer == "cell" else sweep / "sweep.json", 99)
    before = (sweep / "sweep.json").read_bytes()
    assert main(["run", "--resume", str(sweep), "-q"]) == 2
    _one_line_about_format(capsys.readouterr().err, "run.json" if newer == "cell" else "sweep.json")
    assert (sweep / "sweep.json").read_bytes() == before and not (sweep / "users-8").exists()  # nothing ran


def test_reading_a_killed_run_writes_nothing(tmp_path: Path) -> None:
    run = write_killed_run(tmp_path / "run-k")
    before = (run / "run.json").read_bytes()
    for read in (load_run, load_study, rundir.find_run_dirs):
        with pytest.raises(rundir.RunDirError, match="cut off.*loadgen report"):
            read(run)
    assert (run / "run.json").read_bytes() == before and (run / PARTS_DIR).is_dir() and not rundir.has_attempts(run)


@pytest.mark.slow
def test_loadgen_report_recovers_a_killed_run_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "sweep-s"
    write_run(sweep / "users-2")
    killed = write_killed_run(sweep / "users-4")
    assert main(["report", str(sweep)]) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if "cut off" in x]
    assert str(killed) in line and "recovered 36 attempts" in line  # 30 transfers, 6 of them retried
    record = rundir.read_run(killed)
    assert record is not None and record.status == "cut off" and record.sections.cut_off is not None
    assert record.sections.cut_off.attempts_on_disk == 36 == record.sections.summary.attempts
    assert rundir.recover_cut_off(sweep) == []  # once is enough
    assert main(["report", str(sweep)]) == 0 and "cut off" not in capsys.readouterr().out


def test_recovery_does_not_overwrite_a_run_json_it_cannot_read(tmp_path: Path) -> None:
    run = write_killed_run(tmp_path / "run-k")
    _set_format(run / "run.json", 99)
    with pytest.raises(FormatError):
        rundir.recover_cut_off(run)
    assert json.loads((run / "run.json").read_text())["format"] == 99 and (run / PARTS_DIR).is_dir()


def test_the_reports_headline_is_run_jsons_summary(tmp_path: Path) -> None:
    """The figures a reader sees first in the report are the ones run.json and the terminal give:
    computed by the same function (loadgen.results.metrics.figures), over the same attempts."""
    run = load_run(write_run(tmp_path / "run-a"))
    assert run.record is not None
    summary = run.record.summary
    headline = analyse_run(run).headline
    shared = set(summary) & set(headline)
    assert shared >= {"attempts", "transactions", "conflict_rate", "retried_share", "throughput_commits_per_s", "transaction_latency_ms"}
    assert summary["conflicts"] == 12 and summary["transactions"] == 60 and summary["retried_share"] == pytest.approx(0.2)
    for key in sorted(shared):
        assert headline[key] == pytest.approx(summary[key]), key
    assert run.sections.summary.conflict_rate == headline["conflict_rate"]
