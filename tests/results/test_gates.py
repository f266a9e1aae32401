"""Gates for CI: a breached run writes everything, says so in one line per breach and exits 3;
an unbreached one exits 0; broken invariants exit 1 whatever the gates say. Real runs, real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from commandline import run_cli

from loadgen.results.gates import EXIT_GATE, breach_lines, evaluate

pytestmark = pytest.mark.slow


def _run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if (p / "run.json").is_file()]
    return run_dir


def test_evaluate_names_limit_value_and_verdict() -> None:
    summary = {"conflict_rate": 0.12, "retries_per_commit": None, "transaction_latency_ms": {"p99": 40.0}}
    gates = evaluate({"max_conflict_rate": 0.05, "max_retries_per_commit": 1.0, "max_txn_p99_ms": 50.0}, summary)
    assert gates == [
        {"name": "max_conflict_rate", "limit": 0.05, "value": 0.12, "ok": False},
        {"name": "max_retries_per_commit", "limit": 1.0, "value": None, "ok": False},  # not measured: no evidence of the bound
        {"name": "max_txn_p99_ms", "limit": 50.0, "value": 40.0, "ok": True},
    ]
    assert breach_lines(gates) == [
        "gate max_conflict_rate breached: conflict rate 12.00% > 5.00%",
        "gate max_retries_per_commit breached: retries per commit not measured > 1.0000",
    ]
    assert evaluate({"max_conflict_rate": None}, summary) == []


def test_a_breached_gate_from_the_scenario_file_exits_3_with_everything_written(embedded: object, tmp_path: Path) -> None:
    scenario = tmp_path / "gated.toml"
    scenario.write_text(
        'name = "gated"\naccounts = 10\nusers = 20\nduration = "2s"\n\n[gates]\nmax_conflict_rate = 0.01\nmax_txn_p99_ms = 100000\n'
    )
    out = tmp_path / "runs"
    r = run_cli("run", str(scenario), "--out", str(out), "--csv", str(tmp_path / "lg"), "-q")
    assert r.returncode == EXIT_GATE, r.stdout[-2000:] + r.stderr[-2000:]
    run_dir = _run_dir(out)
    doc = json.loads((run_dir / "run.json").read_text())
    rate = doc["summary"]["conflict_rate"]
    assert rate > 0.01 and doc["invariants_hold"] is True
    assert doc["gates"] == [
        {"name": "max_conflict_rate", "limit": 0.01, "value": rate, "ok": False},
        {"name": "max_txn_p99_ms", "limit": 100000.0, "value": doc["summary"]["transaction_latency_ms"]["p99"], "ok": True},
    ]
    # One line per breach, and only for breaches.
    lines = [ln for ln in r.stderr.splitlines() if "gate " in ln]
    assert lines == [f"loadgen: gate max_conflict_rate breached: conflict rate {rate:.2%} > 1.00%"], r.stderr
    # Everything is still written.
    assert (run_dir / "attempts.parquet").is_file() and (run_dir / "report.html").is_file()
    assert (tmp_path / "lg_stats.csv").is_file()


def test_an_unbreached_gate_exits_0(embedded: object, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    r = run_cli("run", "--accounts", "1000", "--users", "4", "--duration", "2s", "--max-conflict-rate", "0.9", "--out", str(out), "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((_run_dir(out) / "run.json").read_text())
    assert [(g["name"], g["ok"]) for g in doc["gates"]] == [("max_conflict_rate", True)]
    assert "gate              max_conflict_rate ok" in r.stdout and "breached" not in r.stderr


def test_broken_invariants_exit_1_even_with_a_gate_breached(embedded: object, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    # Read-modify-write under READ COMMITTED loses updates: money disappears (cc nowait, as the lost-update scenario).
    r = run_cli(
        "run", "--accounts", "10", "--users", "20", "--duration", "2s", "--shape", "read-modify-write",
        "--isolation", "read-committed", "--cc", "nowait", "--max-txn-p99-ms", "0.001", "--out", str(out), "-q",
    )  # fmt: skip
    doc = json.loads((_run_dir(out) / "run.json").read_text())
    assert doc["invariants_hold"] is False and doc["gates"][0]["ok"] is False
    assert r.returncode == 1, r.stderr[-2000:]


def test_the_gates_are_in_run_help() -> None:
    r = run_cli("run", "--help", timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]  # a help text with a bare % would not even format
    assert "--max-conflict-rate" in r.stdout and "--max-retries-per-commit" in r.stdout and "--max-txn-p99-ms" in r.stdout
