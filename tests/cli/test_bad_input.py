"""The rest of the bad-input table: each gets one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from commandline import run_cli

from loadgen.targets.embedded import EmbeddedPostgres


def _one_line(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.slow
def test_refused_authentication(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    dsn = f"host={embedded.socket_dir} port=5432 dbname=postgres user=no_such_role"
    line = _one_line(run_cli("run", "--target", "postgres", "--dsn", dsn, "--out", str(tmp_path)))
    assert "cannot connect" in line and "no_such_role" in line


@pytest.mark.slow
def test_missing_database(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    dsn = f"host={embedded.socket_dir} port=5432 dbname=no_such_db user=postgres"
    line = _one_line(run_cli("run", "--target", "postgres", "--dsn", dsn, "--out", str(tmp_path)))
    assert "no_such_db" in line


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory: pytest.TempPathFactory, embedded: EmbeddedPostgres) -> Path:
    out = tmp_path_factory.mktemp("runs")
    proc = run_cli("run", "--accounts", "50", "--users", "4", "--duration", "1", "--out", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = out.iterdir()
    return run_dir


@pytest.mark.slow
def test_report_on_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    line = _one_line(run_cli("report", str(tmp_path)))
    assert "not a run or sweep" in line


@pytest.mark.slow
def test_report_on_a_corrupt_parquet_file(recorded_run: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(recorded_run, broken)
    data = (broken / "attempts.parquet").read_bytes()
    (broken / "attempts.parquet").write_bytes(data[: len(data) // 2])
    line = _one_line(run_cli("report", str(broken)))
    assert "attempts.parquet" in line


@pytest.mark.slow
def test_report_on_a_corrupt_run_json(recorded_run: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(recorded_run, broken)
    (broken / "run.json").write_text("{not json")
    line = _one_line(run_cli("report", str(broken)))
    assert "run.json" in line


@pytest.mark.slow
def test_report_to_an_unwritable_place(recorded_run: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = _one_line(run_cli("report", str(recorded_run), "-o", str(blocker / "r.html")))
    assert "r.html" in line or "cannot write" in line


@pytest.mark.slow
def test_report_of_a_good_run_still_works(recorded_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    proc = run_cli("report", str(recorded_run), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((recorded_run / "run.json").read_text())
    assert doc["run_id"] in out.read_text()
