"""The report drawn at the end of a run never costs the run: a failure is one line on stderr. No database."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadgen.engine.session import write_report_or_warn


def test_a_report_that_cannot_be_drawn_is_one_line_and_no_exception(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_a_run = tmp_path / "run-x"
    not_a_run.mkdir()
    (not_a_run / "notes.txt").write_text("kept")
    assert write_report_or_warn([not_a_run]) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("loadgen: could not write the report (")
    assert f"the data is safe, try `loadgen report {not_a_run}`" in err
    assert sorted(p.name for p in not_a_run.iterdir()) == ["notes.txt"]  # nothing written, nothing removed
