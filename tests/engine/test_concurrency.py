"""The concurrency asked for is the concurrency measured: warm-up, connection wait, in-flight, refusals."""

from __future__ import annotations

import json
import random
import resource
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from commandline import run_cli

from loadgen.db.transfer import TransferRequest, run_transfer
from loadgen.engine import runner
from loadgen.engine.users import check_client_capacity
from loadgen.errors import ConfigError, TargetError
from loadgen.model.attempt import CONN_WAIT_MS, LATENCY_MS, STARTED_AT
from loadgen.model.retry import RetryPolicy
from loadgen.model.scenario import Scenario
from loadgen.results.metrics import concurrency
from loadgen.targets.base import EmbeddedTarget
from loadgen.targets.embedded import EmbeddedPostgres, connection_capacity


@pytest.mark.slow
def test_every_connection_opens_before_the_measured_period(target: EmbeddedTarget, tmp_path: Path) -> None:
    users = 40
    result = runner.run(Scenario(accounts=1000, users=users, spawn_rate=users, duration_s=1.5, seed=2), target, tmp_path)
    doc = json.loads((result.run_dir / "run.json").read_text())
    assert doc["warmup"]["connections"] == users and doc["connections"]["opened"] == users
    attempts = pq.read_table(result.run_dir / "attempts.parquet").to_pandas()
    warm_end = pd.Timestamp(datetime.fromisoformat(doc["warmup"]["ended_at"]))
    assert attempts["started_at"].min() >= warm_end  # nothing measured during the warm-up
    assert "conn_wait_ms" in attempts.columns and (attempts["conn_wait_ms"] >= 0).all()
    assert doc["concurrency"]["users"] == users and doc["concurrency"]["in_flight_mean"] > 0


def test_the_wait_for_a_connection_is_apart_from_database_time() -> None:
    rows: list[Any] = []

    def slow_getconn() -> Any:
        time.sleep(0.05)  # gevent's sleep: queueing for a connection
        return object()

    def transaction(conn: Any, req: Any, phase: Any) -> None:
        time.sleep(0.03)  # the database's part

    t_call = time.time()
    run_transfer(TransferRequest.new(1, 2, 1), slow_getconn, lambda c: None, RetryPolicy(), random.Random(1), rows.append, transaction)
    (row,) = rows
    started_at, latency_ms, conn_wait_ms = row[STARTED_AT], row[LATENCY_MS], row[CONN_WAIT_MS]
    assert conn_wait_ms >= 50.0 and latency_ms >= 30.0
    assert started_at >= t_call + 0.05  # the attempt's database time starts once the connection is in hand


def test_in_flight_below_90_percent_of_users_is_warned() -> None:
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    # 10 users asked; a measured second (one attempt of 1,000 ms) and eight of 400 ms: 4.2 in flight.
    attempts = pd.DataFrame({"started_at": [t0] * 9, "latency_ms": [1000.0] + [400.0] * 8})
    c = concurrency(attempts, 10, closed_loop=True)
    assert c["in_flight_mean"] == pytest.approx(4.2) and c["in_flight_share"] == pytest.approx(0.42)
    assert "4.2 transactions were in flight on average against 10 users asked (42%)" in c["warning"]
    assert concurrency(attempts, 10, closed_loop=False)["warning"] is None  # open loop: fewer by design
    assert concurrency(attempts, 4, closed_loop=True)["warning"] is None  # all 4 busy


def test_more_connections_than_this_process_may_open_are_refused() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no file limit on this machine")
    with pytest.raises(ConfigError, match=r"ulimit -n"):
        check_client_capacity(hard)


def test_more_connections_than_the_machine_holds_are_refused_without_touching_the_server(embedded: EmbeddedPostgres) -> None:
    pid = embedded.status().pid
    capacity, why = connection_capacity()
    # Twice as many: the capacity follows free memory (4 MiB a connection), which moves between two readings.
    with pytest.raises(TargetError, match="more than this machine can give the embedded PostgreSQL"):
        embedded.ensure_running(min_connections=capacity * 2)
    assert embedded.status().pid == pid  # still the same server, not restarted


@pytest.mark.slow
def test_the_command_line_refuses_100000_users_in_one_line(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    pid = embedded.status().pid
    done = run_cli("run", "--users", "100000", "--duration", "2", "--out", str(tmp_path), timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "100,000" in done.stderr and ("ulimit -n" in done.stderr or "embedded PostgreSQL" in done.stderr)
    assert embedded.status().pid == pid
