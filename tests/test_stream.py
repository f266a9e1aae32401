"""The streaming attempt writer on its own: parts, segments, crashes between the two, recovery of a killed run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq

from loadgen.results import stream as st
from loadgen.results.recorder import AttemptRecorder


def _fill(rec: AttemptRecorder, n: int, outcome: str = "committed") -> None:
    for _ in range(n):
        rec.add((str(uuid.uuid4()), 1, time.time(), 1.5, outcome, None, None, 1, 2, 1, 0.0, False, 0.0), 7)


def test_parts_merge_into_segments_and_compact_into_one_file(tmp_path: Path) -> None:
    rec = AttemptRecorder("run-x", worker="w1")
    s = st.AttemptStream(tmp_path)
    for _ in range(st.MERGE_EVERY + 5):
        _fill(rec, 10)
        assert s.drain(rec) == 10
    assert rec.rows == [] and rec.users == []  # memory handed over
    assert s.drain(rec) == 0  # nothing new: no empty part
    names = sorted(p.name for p in (tmp_path / st.PARTS_DIR).glob("*.parquet"))
    assert names[-1] == f"seg-000001-{st.MERGE_EVERY:06d}.parquet" and len(names) == 6
    table = st.read_parts(tmp_path)
    assert table.num_rows == 10 * (st.MERGE_EVERY + 5)
    assert set(table.column("worker").to_pylist()) == {"w1"} and set(table.column("user").to_pylist()) == {7}
    s.close()
    st.compact(tmp_path)
    assert pq.read_metadata(tmp_path / "attempts.parquet").num_rows == 10 * (st.MERGE_EVERY + 5)
    assert not (tmp_path / st.PARTS_DIR).exists()


def test_a_crash_between_segment_and_part_deletion_counts_nothing_twice(tmp_path: Path) -> None:
    rec = AttemptRecorder("run-x")
    s = st.AttemptStream(tmp_path)
    for _ in range(st.MERGE_EVERY):
        _fill(rec, 3)
        s.drain(rec)
    # Put one merged part back, as if the process died before deleting it; and tear one part.
    parts = tmp_path / st.PARTS_DIR
    pq.write_table(pq.read_table(next(parts.glob("seg-*.parquet"))).slice(0, 3), parts / "part-000002.parquet")
    _fill(rec, 4)
    s.drain(rec)
    (parts / "part-999999.parquet").write_bytes(b"PAR1 torn by a power loss")
    assert st.read_parts(tmp_path).num_rows == 3 * st.MERGE_EVERY + 4


_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys, time, uuid
    from pathlib import Path
    from loadgen.results.recorder import AttemptRecorder
    from loadgen.results.stream import AttemptStream
    rec = AttemptRecorder("run-killed")
    s = AttemptStream(Path(sys.argv[1]))
    for i in range(5):
        for _ in range(100):
            rec.add((str(uuid.uuid4()), 1, time.time(), 1.0, "committed", None, None, 1, 2, 1, 0.0, False, 0.0), 1)
        s.drain(rec)
    print("written", flush=True)
    for _ in range(100):  # recorded, never flushed: lost with the process
        rec.add((str(uuid.uuid4()), 1, time.time(), 1.0, "committed", None, None, 1, 2, 1, 0.0, False, 0.0), 1)
    time.sleep(600)
    """
)


def test_recover_a_killed_writer(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "run-killed", "status": "running", "completed": False}))
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
    assert st.is_writing(tmp_path)
    assert st.recover(tmp_path) is None  # a live writer's parts are left alone
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert not st.is_writing(tmp_path)
    cut = st.recover(tmp_path)
    assert cut is not None and cut.attempts == 500
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["status"] == "cut off" and doc["completed"] is False
    assert doc["cut_off"]["attempts_on_disk"] == 500 and doc["cut_off"]["last_write"]
    assert doc["summary"]["attempts"] == 500
    assert pq.read_metadata(tmp_path / "attempts.parquet").num_rows == 500
    assert not (tmp_path / st.PARTS_DIR).exists()
    assert st.recover(tmp_path) is None  # once is enough
