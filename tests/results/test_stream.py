"""The streaming attempt writer: parts, segments, crashes between the two, recovery of a killed run,
and the end of a run writing them into attempts.parquet without every attempt in memory."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psycopg
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from loadgen.engine.session import RunSession
from loadgen.engine.users import TransferUser
from loadgen.model.scenario import Scenario
from loadgen.results import recorder
from loadgen.results import stream as st
from loadgen.results.metrics import SUMMARY_COLUMNS, in_flight_mean, summarize, summary_frame
from loadgen.results.recorder import ATTEMPT_SCHEMA, AttemptRecorder
from loadgen.targets.base import EmbeddedTarget


def _fill(rec: AttemptRecorder, n: int, outcome: str = "committed") -> None:
    for _ in range(n):
        rec.add((str(uuid.uuid4()), 1, time.time(), 1.5, outcome, None, None, 1, 2, 1, 0.0, False, 0.0, None), 7)


def test_parts_merge_into_segments_and_end_in_one_file(tmp_path: Path) -> None:
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
    st.attempts_from_parts(tmp_path)
    assert pq.read_metadata(tmp_path / "attempts.parquet").num_rows == 10 * (st.MERGE_EVERY + 5)
    assert not (tmp_path / st.PARTS_DIR).exists()


def test_row_groups_where_reads_only_the_rows_it_selects_across_parts_and_segments(tmp_path: Path) -> None:
    rec = AttemptRecorder("run-x")
    s = st.AttemptStream(tmp_path)
    for second in range(st.MERGE_EVERY + 3):  # a segment and three parts after it
        _fill(rec, 5)
        if second % 4 == 1:
            _fill(rec, 2, outcome="interrupted")
        s.drain(rec)
    s.close()
    test = (("outcome",), lambda t: pc.equal(t.column("outcome"), "interrupted"))
    found = list(st.row_groups(tmp_path, ("txn_id", "attempt"), where=test))
    everything = st.read_parts(tmp_path)
    wanted = everything.filter(pc.equal(everything.column("outcome"), "interrupted"))
    # Only the row groups holding one are yielded, each with only its selected rows and the columns asked for.
    assert len(found) == len(range(1, st.MERGE_EVERY + 3, 4)) and all(t.num_rows == 2 for t in found)
    assert found[0].column_names == ["txn_id", "attempt"]
    assert [i for t in found for i in t.column("txn_id").to_pylist()] == wanted.column("txn_id").to_pylist()
    assert list(st.row_groups(tmp_path, ("txn_id",), where=(("outcome",), lambda t: pc.equal(t.column("outcome"), "none")))) == []


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
            rec.add((str(uuid.uuid4()), 1, time.time(), 1.0, "committed", None, None, 1, 2, 1, 0.0, False, 0.0, None), 1)
        s.drain(rec)
    print("written", flush=True)
    for _ in range(100):  # recorded, never flushed: lost with the process
        rec.add((str(uuid.uuid4()), 1, time.time(), 1.0, "committed", None, None, 1, 2, 1, 0.0, False, 0.0, None), 1)
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
    assert cut is not None and cut.attempts_on_disk == 500
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["status"] == "cut off" and doc["completed"] is False
    assert doc["cut_off"]["attempts_on_disk"] == 500 and doc["cut_off"]["last_write"]
    assert doc["summary"]["attempts"] == 500
    assert pq.read_metadata(tmp_path / "attempts.parquet").num_rows == 500
    # Summarized from a few columns, written row group by row group: the same as from the whole file.
    assert doc["summary"] == summarize(pq.read_table(tmp_path / "attempts.parquet").to_pandas())
    assert not (tmp_path / st.PARTS_DIR).exists()
    assert st.recover(tmp_path) is None  # once is enough


def _realistic(rec: AttemptRecorder, transfers: int, rng: random.Random, t0: float) -> None:
    """Transfers with retries, failures and lost COMMIT answers, as a contended run records them."""
    t = t0
    for _ in range(transfers):
        txn, attempt = str(uuid.uuid4()), 1
        while attempt < 4 and rng.random() < 0.4:
            rec.add((txn, attempt, t, rng.uniform(0.5, 9), "conflict", "40001", None, 1, 2, 1, 0.0, False, 0.0, None), rng.randrange(8))
            attempt, t = attempt + 1, t + 0.001
        outcome, sqlstate, unknown = rng.choice(
            [("committed", None, False)] * 6 + [("insufficient_funds", "23514", False), ("connection_error", "08006", True)]
        )
        rec.add((txn, attempt, t, rng.uniform(0.5, 9), outcome, sqlstate, None, 1, 2, 1, 0.0, unknown, 0.0, None), rng.randrange(8))
        t += 0.001


def test_attempts_from_parts_writes_exactly_the_parts_and_the_narrow_summary_equals_the_full_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Row groups smaller than a part and larger than one: pieces are split and gathered.
    monkeypatch.setattr(recorder, "ROW_GROUP_ROWS", 1000)
    rec = AttemptRecorder("run-c", worker="w2", cell="c1")
    s = st.AttemptStream(tmp_path)
    rng = random.Random(3)
    for i in range(st.MERGE_EVERY + 7):  # one segment, then loose parts
        _realistic(rec, rng.randrange(1, 400), rng, 1_800_000_000 + i)
        s.drain(rec)
    s.close()
    parts = st.read_parts(tmp_path)
    narrow = st.read_parts(tmp_path, SUMMARY_COLUMNS)
    assert narrow.column_names == list(SUMMARY_COLUMNS) and narrow.num_rows == parts.num_rows
    st.attempts_from_parts(tmp_path)
    written = pq.read_table(tmp_path / "attempts.parquet")
    assert written.schema == ATTEMPT_SCHEMA and written.equals(parts.combine_chunks())  # same rows, columns and order
    meta = pq.read_metadata(tmp_path / "attempts.parquet")
    assert meta.num_row_groups == -(-parts.num_rows // 1000) and meta.row_group(0).num_rows == 1000
    assert not (tmp_path / st.PARTS_DIR).exists()

    # The summary of the few columns, transfer ids as codes, is the summary of the whole table.
    full = written.to_pandas()
    lean = summary_frame(narrow)
    assert lean["txn_id"].dtype.kind == "i"
    assert summarize(lean) == summarize(full)
    assert summarize(lean)["retries"] > 0 and summarize(lean)["failed_transactions"] > 0
    assert in_flight_mean(lean) == in_flight_mean(full)


def test_settled_commits_are_written_ambiguous_committed_and_nothing_else_changes(tmp_path: Path) -> None:
    rec = AttemptRecorder("run-s")
    s = st.AttemptStream(tmp_path)
    _realistic(rec, 300, random.Random(5), 1_800_000_000)
    s.drain(rec)
    s.close()
    before = st.read_parts(tmp_path)
    unknown = before.filter(pc.field("commit_unknown")).slice(0, 2)
    settled = dict(zip(unknown.column("txn_id").to_pylist(), unknown.column("attempt").to_pylist()))
    assert len(settled) == 2
    st.attempts_from_parts(tmp_path, settled)
    after = pq.read_table(tmp_path / "attempts.parquet")
    changed = pc.not_equal(before.column("outcome"), after.column("outcome"))
    assert pc.sum(changed).as_py() == 2
    assert set(after.filter(changed).column("txn_id").to_pylist()) == set(settled)
    assert set(after.filter(changed).column("outcome").to_pylist()) == {"ambiguous_committed"}
    assert after.drop_columns(["outcome"]).equals(before.drop_columns(["outcome"]).combine_chunks())


def test_finish_settles_a_lost_commit_from_the_ledger_and_writes_attempts_parquet(target: EmbeddedTarget, tmp_path: Path) -> None:
    """The real finish: attempts read back a few columns at a time, the ledger asked, attempts.parquet written."""
    session = RunSession(Scenario(accounts=10, users=2), target)
    session.prepare(tmp_path)
    assert session.run_dir is not None
    env = session.environment(TransferUser)
    session.start()
    rec = AttemptRecorder(session.run_id)
    session.stream(lambda: (rec,), env)
    landed, lost, committed = (str(uuid.uuid4()) for _ in range(3))
    now = time.time()
    rec.add((committed, 1, now, 2.0, "committed", None, None, 1, 2, 1, 0.0, False, 0.0, None), 0)
    rec.add((landed, 1, now, 2.0, "conflict", "40001", None, 1, 2, 1, 0.0, False, 0.0, None), 1)
    rec.add((landed, 2, now + 0.01, 2.0, "connection_error", "08006", None, 1, 2, 1, 0.0, True, 0.0, "commit"), 1)
    rec.add((lost, 1, now + 0.02, 2.0, "connection_error", "08006", None, 3, 4, 1, 0.0, True, 0.0, "commit"), 0)
    with psycopg.connect(target.conninfo(), autocommit=True) as c:  # the COMMIT of ``landed`` reached the ledger
        for txn in (committed, landed):
            c.execute("INSERT INTO transfers (id, payer, payee, amount) VALUES (%s, 1, 2, 0)", (txn,))
    result = session.finish(rec, env, {})
    assert result.invariants_hold, result.invariants
    written = pq.read_table(session.run_dir / "attempts.parquet").to_pylist()
    assert [(r["txn_id"], r["attempt"], r["outcome"], r["failed_at"]) for r in written] == [
        (committed, 1, "committed", None),
        (landed, 1, "conflict", None),
        (landed, 2, "ambiguous_committed", None),  # its COMMIT landed: it failed nowhere
        (lost, 1, "connection_error", "commit"),
    ]
    assert result.summary["commits"] == 2 and result.summary["attempts"] == 4 and result.summary["transactions"] == 3
    assert not (session.run_dir / st.PARTS_DIR).exists()
