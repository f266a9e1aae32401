"""Transaction shapes, the read mix and the load models, against the real embedded PostgreSQL."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest

from loadgen.db.classify import InsufficientFunds
from loadgen.db.occ import OCC_SHAPES
from loadgen.db.schema import reset
from loadgen.db.shapes import SHAPE_FUNCTIONS, MultiLegRequest, audit, read_balance, shape
from loadgen.db.transfer import TransferRequest, run_transfer
from loadgen.model.occsim import OCC_STATEMENTS, STATEMENTS, statements
from loadgen.model.retry import RetryPolicy
from loadgen.model.scenario import SHAPES, Scenario
from loadgen.model.scenariofile import Cell
from loadgen.model.shapes import TRANSACTION_SHAPES
from loadgen.model.steps import SHAPE_STEPS
from loadgen.targets.embedded import EmbeddedPostgres


@pytest.fixture
def bank(embedded: EmbeddedPostgres) -> Any:
    with psycopg.connect(embedded.conninfo, autocommit=True) as c:
        reset(c, 10, 100)
    conn = psycopg.connect(embedded.conninfo)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    yield conn
    conn.close()


def _balances(conn: psycopg.Connection[Any]) -> dict[int, int]:
    rows = conn.execute("SELECT id, balance FROM accounts ORDER BY id").fetchall()
    conn.rollback()
    return dict(rows)


def test_one_registry_of_shapes_is_what_the_model_the_simulator_and_the_database_read() -> None:
    # A function per row in both of the database code's forms, steps per row, in the registry's order.
    assert list(SHAPE_FUNCTIONS) == list(OCC_SHAPES) == list(SHAPE_STEPS) == list(TRANSACTION_SHAPES) == list(SHAPES)
    assert set(STATEMENTS) == {s.name for s in TRANSACTION_SHAPES.values() if s.statements is not None}
    assert set(OCC_STATEMENTS) == {s.name for s in TRANSACTION_SHAPES.values() if s.occ_statements is not None}
    assert (statements("update-returning"), statements("multi-leg", 3), statements("joint-withdrawal")) == (3, 5, None)
    assert (statements("read-modify-write", first_committer_wins=True), statements("multi-leg", 2, first_committer_wins=True)) == (3, 4)


@pytest.mark.parametrize("name", ["update-returning", "select-then-update", "single-statement"])
def test_each_shape_moves_money_once(bank: psycopg.Connection[Any], name: str) -> None:
    rows: list[tuple] = []
    req = TransferRequest.new(3, 7, 25)
    result = run_transfer(req, lambda: bank, lambda c: None, RetryPolicy(), random.Random(0), rows.append, shape(name))
    assert result.outcome == "committed" and len(rows) == 1
    b = _balances(bank)
    assert (b[3], b[7], sum(b.values())) == (75, 125, 1000)
    assert bank.execute("SELECT payer, payee, amount FROM transfers WHERE id = %s", (req.txn_id,)).fetchone() == (3, 7, 25)
    bank.rollback()


@pytest.mark.parametrize("name", list(SHAPE_FUNCTIONS))
def test_each_shape_refuses_to_overdraw(bank: psycopg.Connection[Any], name: str) -> None:
    with pytest.raises(InsufficientFunds):
        SHAPE_FUNCTIONS[name](bank, MultiLegRequest("00000000-0000-0000-0000-000000000001", 1, 2, 101, (2,)), None)
    assert sum(_balances(bank).values()) == 1000 and _balances(bank)[1] == 100


def test_multi_leg_pays_every_payee(bank: psycopg.Connection[Any]) -> None:
    req = MultiLegRequest("00000000-0000-0000-0000-000000000002", 1, 2, 10, (2, 5, 9))
    result = run_transfer(req, lambda: bank, lambda c: None, RetryPolicy(), random.Random(0), lambda r: None, shape("multi-leg"))
    assert result.outcome == "committed"
    b = _balances(bank)
    assert (b[1], b[2], b[5], b[9], sum(b.values())) == (70, 110, 110, 110, 1000)


def test_select_then_update_conflicts_when_the_read_is_stale(embedded: EmbeddedPostgres, bank: psycopg.Connection[Any]) -> None:
    # A reads the payer in its snapshot; B changes that row and commits; A's write must fail with 40001.
    with psycopg.connect(embedded.conninfo, autocommit=True) as other:
        bank.execute("SELECT balance FROM accounts WHERE id = 1").fetchone()
        other.execute("UPDATE accounts SET balance = balance - 1 WHERE id = 1")
        with pytest.raises(psycopg.errors.SerializationFailure):
            bank.execute("UPDATE accounts SET balance = balance - 1 WHERE id = 1")
        bank.rollback()


def test_reads(bank: psycopg.Connection[Any]) -> None:
    assert read_balance(bank, 4) == 100
    assert audit(bank) == (1000, 10)


def _run(scenario: Scenario, embedded: EmbeddedPostgres, out: Path) -> tuple[dict[str, Any], Any]:
    import json

    from loadgen.engine.sweep import run_cell
    from loadgen.targets.base import EmbeddedTarget

    result = run_cell(Cell(0, {}, scenario), EmbeddedTarget(embedded), out)
    assert result.invariants_hold, result.invariants
    return json.loads((result.run_dir / "run.json").read_text()), pq.read_table(result.run_dir / "attempts.parquet").to_pandas()


@pytest.mark.slow
def test_batches_run_exactly_users_times_batches(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    s = Scenario(accounts=200, users=8, spawn_rate=8, duration_s=60, load="batches", batches=4, seed=1)
    doc, attempts = _run(s, embedded, tmp_path)
    assert attempts["txn_id"].nunique() == 32
    assert doc["load"]["batches_completed"] == 4 and len(doc["load"]["batch_ms"]) == 4
    assert doc["summary"]["elapsed_s"] < 30  # ended with the last batch, not the 60 s cap


@pytest.mark.slow
def test_open_loop_keeps_up_at_a_low_rate(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    s = Scenario(accounts=1000, users=10, duration_s=2, load="open", arrival_rate=50, seed=1)
    doc, attempts = _run(s, embedded, tmp_path)
    load = doc["load"]
    assert load["kept_up"], load
    assert 80 <= load["started"] <= 110 and load["achieved_rate"] == pytest.approx(50, rel=0.1)


@pytest.mark.slow
def test_open_loop_says_when_it_cannot_keep_up(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    s = Scenario(accounts=1000, users=1, duration_s=2, load="open", arrival_rate=20000, seed=1)
    doc, _ = _run(s, embedded, tmp_path)
    load = doc["load"]
    assert not load["kept_up"] and load["late"] > 0 and load["achieved_rate"] < 15000


@pytest.mark.slow
def test_closed_loop_think_time_slows_each_user(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    s = Scenario(accounts=1000, users=2, duration_s=2, think_ms=200, seed=1)
    _, attempts = _run(s, embedded, tmp_path)
    assert 4 <= attempts["txn_id"].nunique() <= 24  # 2 users x about 10 at most


@pytest.mark.slow
def test_read_mix_audits_check_the_total(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    s = Scenario(accounts=20, users=10, duration_s=2, read_mix=0.5, read_kind="audit", seed=1)
    doc, attempts = _run(s, embedded, tmp_path)
    reads = doc["reads"]
    assert reads["audits"] > 20 and reads["audit_mismatches"] == 0
    share = reads["count"] / (reads["count"] + attempts["txn_id"].nunique())
    assert 0.35 < share < 0.65
    assert (attempts["payer"] != attempts["payee"]).all()  # the attempt table holds transfers only


@pytest.mark.slow
def test_shape_and_skewed_keys_in_a_real_run(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    s = Scenario(accounts=50, users=10, duration_s=2, transaction="multi-leg", legs=3, distribution="zipf", zipf_s=1.2, seed=1)
    doc, attempts = _run(s, embedded, tmp_path)
    assert doc["keys"]["name"] == "zipf" and doc["keys"]["collision_probability"] > 1 / 50
    assert doc["summary"]["commits"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(("isolation", "conserved"), [("read-committed", False), ("repeatable-read", True)])
def test_lost_update_shows_under_read_committed_only(embedded: EmbeddedPostgres, tmp_path: Path, isolation: str, conserved: bool) -> None:
    from loadgen.engine.sweep import run_cell
    from loadgen.targets.base import EmbeddedTarget

    s = Scenario(
        accounts=5,
        users=10,
        duration_s=2.5,
        initial_balance=1000,
        transaction="read-modify-write",
        isolation=isolation,
        cc="nowait",
        seed=2,
    )
    result = run_cell(Cell(0, {}, s), EmbeddedTarget(embedded), tmp_path)
    money = {i.name: i for i in result.invariants}["money_conserved"]
    assert money.ok is conserved, money.detail
    if conserved:
        assert result.summary["conflicts"] > 0  # snapshot isolation caught the overwrites instead


@pytest.mark.slow
@pytest.mark.parametrize(("shape", "skew"), [("joint-withdrawal", True), ("joint-withdrawal-for-update", False)])
def test_write_skew_under_snapshot_isolation_and_not_with_for_update(
    embedded: EmbeddedPostgres, tmp_path: Path, shape: str, skew: bool
) -> None:
    from loadgen.engine.sweep import run_cell
    from loadgen.targets.base import EmbeddedTarget

    s = Scenario(accounts=40, users=20, duration_s=3, initial_balance=200, amount=10, transaction=shape, seed=1)
    result = run_cell(Cell(0, {}, s), EmbeddedTarget(embedded), tmp_path)
    checks = {i.name: i for i in result.invariants}
    assert checks["money_conserved"].ok and checks["ledger_matches_commits"].ok
    assert checks["joint_minimum_kept"].ok is not skew, checks["joint_minimum_kept"].detail
    assert result.summary["commits"] > 100
