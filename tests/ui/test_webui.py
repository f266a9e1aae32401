"""`loadgen ui` for real: a subprocess serving Locust's web UI, driven through Locust's HTTP API.

The embedded PostgreSQL of the test session is the target; headless Chromium
(Debian's ``chromium``, driven by Playwright: tests/chromium.py) uses the pages as a person would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from chromium import PageWatch
from playwright.sync_api import expect

from loadgen.results import rundir
from loadgen.results.metrics import CONFLICT_RATE
from loadgen.results.recorder import ATTEMPT_SCHEMA
from loadgen.targets.embedded import EmbeddedPostgres
from loadgen.ui import LOCUSTFILE


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UI:
    """A running ``loadgen ui`` and a tiny client for its HTTP API."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.base + path, timeout=30) as r:
            return r.read()

    def json(self, path: str) -> Any:
        return json.loads(self.get(path))

    def post(self, path: str, form: dict[str, Any] | None = None) -> Any:
        body = urllib.parse.urlencode(form or {}).encode()
        with urllib.request.urlopen(self.base + path, data=body, timeout=60) as r:
            return json.loads(r.read())

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            data = self.json("/contention/data")
            if predicate(data):
                return data
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; last data: {json.dumps(data)[:2000]}")
            time.sleep(0.3)


def _start_ui(tmp_path: Path, *extra: str) -> UI:
    port = _free_port()
    log = tmp_path / "ui.log"
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadgen.cli", "ui", "--web-port", str(port), "--out", str(tmp_path / "runs"), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ),
        )
    ui = UI(proc, port, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            ui.get("/contention/data")
            return ui
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"loadgen ui did not come up:\n{log.read_text()}") from None
            time.sleep(0.3)


def _stop_ui(ui: UI) -> int:
    if ui.proc.poll() is None:
        ui.proc.send_signal(signal.SIGINT)
        try:
            return ui.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            ui.proc.kill()
            ui.proc.wait()
            raise AssertionError("loadgen ui did not stop on Ctrl-C") from None
    return ui.proc.returncode


@pytest.fixture
def ui(embedded: EmbeddedPostgres, tmp_path: Path) -> Iterator[UI]:
    server = _start_ui(tmp_path)
    try:
        yield server
    finally:
        _stop_ui(server)


def _client_backends(embedded: EmbeddedPostgres) -> int:
    with psycopg.connect(embedded.conninfo, autocommit=True) as c:
        row = c.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp{,6})."""
    found: set[str] = set()
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            addr, state = fields[1], fields[3]
            host_hex, port_hex = addr.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                if len(host_hex) == 8:
                    found.add(socket.inet_ntoa(bytes.fromhex(host_hex)[::-1]))
                else:
                    found.add(host_hex)
    return found


@pytest.mark.slow
def test_listens_on_loopback_by_default(ui: UI) -> None:
    assert _listening_addresses(ui.port) == {"127.0.0.1"}
    assert f"web UI at http://127.0.0.1:{ui.port}/" in ui.log.read_text()


def test_locust_options_default_to_loopback() -> None:
    # Plain `locust -f loadgen/ui/locustfile.py` gets the same safe default.
    import locust.argument_parser as ap
    from locust import events

    from loadgen.ui.webui import DEFAULT_WEB_HOST, install

    install(events)
    parser = ap.get_parser()
    opts = parser.parse_args(["-f", "loadgen/ui/locustfile.py"])
    assert opts.web_host == DEFAULT_WEB_HOST == "127.0.0.1"
    assert parser.secret_args_included_in_web_ui.keys() == {"dsn"}
    assert {"accounts", "distribution", "max_attempts", "backoff", "lock_timeout_ms", "target"} <= set(parser.args_included_in_web_ui)


@pytest.mark.slow
def test_bad_form_values_are_refused_in_one_line(ui: UI) -> None:
    r = ui.post("/swarm", {"user_count": 5, "spawn_rate": 5, "accounts": 1})
    assert r["success"] is False and "accounts must be at least 2" in r["message"]
    r = ui.post("/swarm", {"user_count": 5, "spawn_rate": 5, "max_attempts": "many"})
    assert r["success"] is False and "not a whole number" in r["message"]
    # An unreachable database is refused in the form too, password masked.
    r = ui.post("/swarm", {"user_count": 5, "spawn_rate": 5, "target": "postgres", "dsn": "postgresql://u:pw0@127.0.0.1:1/x"})
    assert r["success"] is False and "cannot connect" in r["message"] and "pw0" not in r["message"]
    assert ui.json("/contention/data")["state"] == "ready"


@pytest.mark.slow
def test_live_contention_through_locusts_http_api(ui: UI, embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    page = ui.get("/").decode()
    found = re.search(r"window\.templateArgs = (.*)", page)
    assert found, page[-2000:]
    assert json.loads(found.group(1))["extended_tabs"] == [{"title": "Contention", "key": "contention"}]

    r = ui.post("/swarm", {"user_count": 10, "spawn_rate": 10, "accounts": 10, "max_attempts": 50})
    assert r["success"], r
    first = ui.wait_for(lambda d: d["totals"]["commits"] >= 50 and len(d["timeline"]) >= 2)
    # The test works in a database of its own, dropped when it stops.
    assert first["database"] and first["database"] in embedded.run_databases()
    with psycopg.connect(embedded.conninfo_for(first["database"]), autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM accounts").fetchone() == (10,)
    later = ui.wait_for(lambda d: d["totals"]["attempts"] > first["totals"]["attempts"] + 200 and len(d["timeline"]) >= 3)
    t = later["totals"]
    assert later["state"] in ("spawning", "running") and later["users"] == 10
    # 10 users over 10 accounts at REPEATABLE READ: conflicts are certain, and not everything conflicts.
    assert 0.0 < t["conflict_rate"] < 1.0
    assert 0.0 < t["retried_share"] <= 1.0 and t["retries_per_commit"] > 0
    assert t["conflicts"] > 0 and t["commits"] > 0
    assert sum(o["count"] for o in t["outcomes"]) == t["attempts"]
    assert ("conflict", "40001") in {(o["outcome"], o["sqlstate"]) for o in t["outcomes"]}
    assert sum(h["transactions"] for h in t["attempts_histogram"]) == t["transactions"]
    assert t["max_attempts"] >= 2
    assert t["hot_accounts"] and all(1 <= a["account"] <= 10 for a in t["hot_accounts"])
    assert any(p["users"] == 10 and p["throughput_commits_per_s"] > 0 for p in later["timeline"])
    # Mid-run downloads: the attempts on disk and those still in memory, read back a batch at a time;
    # none counted twice (one being written at that moment may not be counted yet).
    live = json.loads(ui.get("/contention/download/run.json"))
    so_far = tmp_path / "so-far" / "attempts.parquet"
    so_far.parent.mkdir()
    so_far.write_bytes(ui.get("/contention/download/attempts.parquet"))
    after = ui.json("/contention/data")["totals"]["attempts"]
    assert live["in_progress"] and 0 < live["summary"]["attempts"] <= after
    assert live["summary"]["commits"] + live["summary"]["conflicts"] <= live["summary"]["attempts"]
    assert rundir.attempts_schema(so_far.parent).names == list(ATTEMPT_SCHEMA.names)  # the contract's file, format and all
    ids = pq.read_table(so_far, columns=["txn_id", "attempt"])
    assert 0 < ids.num_rows <= after
    assert ids.group_by(["txn_id", "attempt"]).aggregate([]).num_rows == ids.num_rows  # no attempt twice
    # Locust's own Contention tab gets its rows through /stats/requests.
    stats = ui.json("/stats/requests")
    rows = stats["extended_stats"][0]["data"]
    assert stats["extended_stats"][0]["key"] == "contention"
    assert any(r["metric"].startswith("conflict rate") and r["value"].endswith("%") for r in rows)

    # More users while running: the pool grows with them, the view follows.
    assert ui.post("/swarm", {"user_count": 20, "spawn_rate": 20})["success"]
    ui.wait_for(lambda d: d["users"] == 20 and d["timeline"][-1]["users"] == 20)

    assert ui.post("/stop")["success"]
    stopped = ui.wait_for(lambda d: d["state"] == "stopped" and d["run_dir"] is not None)
    run_dir = Path(stopped["run_dir"])
    assert run_dir.parent == tmp_path / "runs"
    doc = json.loads(ui.get("/contention/download/run.json"))
    assert doc["invariants_hold"], doc["invariants"]
    assert doc["scenario"]["accounts"] == 10 and doc["scenario"]["retry"]["max_attempts"] == 50
    assert doc["summary"]["attempts"] == stopped["totals"]["attempts"]
    parquet = tmp_path / "dl.parquet"
    parquet.write_bytes(ui.get("/contention/download/attempts.parquet"))
    assert pq.read_table(parquet).num_rows == stopped["totals"]["attempts"]
    assert _client_backends(embedded) == 0, "the bench's pool must be closed when the test stops"

    # A colder bank at the next start: re-seeded, and far fewer conflicts.
    assert ui.post("/swarm", {"user_count": 10, "spawn_rate": 10, "accounts": 2000})["success"]
    cold = ui.wait_for(lambda d: d["state"] == "running" and d["totals"]["attempts"] >= 500)
    assert first["database"] not in embedded.run_databases()
    with psycopg.connect(embedded.conninfo_for(cold["database"]), autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM accounts").fetchone() == (2000,)
    assert cold["settings"]["accounts"] == 2000
    assert cold["totals"]["conflict_rate"] < t["conflict_rate"] / 3
    assert ui.post("/stop")["success"]
    ui.wait_for(lambda d: d["state"] == "stopped" and d["run_dir"] is not None)

    assert _stop_ui(ui) == 0
    assert _client_backends(embedded) == 0


def _cell(page: Any, metric: str) -> str:
    """The value beside ``metric`` in the Contention tab's table."""
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=metric, exact=True))
    return str(row.get_by_role("cell").nth(2).inner_text()).strip()


@pytest.mark.slow
def test_a_person_starts_watches_and_stops_a_test_in_the_browser(ui: UI, watched: PageWatch, context: Any, tmp_path: Path) -> None:
    page = watched.page
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(ui.base + "/")
    # Locust's own start form speaks loadgen: Host says where the test runs (no password), no
    # "no host attribute" notice, and loadgen's fields are open, where the test runs first.
    expect(page.locator("input[name=accounts]")).to_be_visible()  # open without a click
    host = page.locator("input[name=host]")
    expect(host).to_have_value(re.compile(r"^loadgen target embedded: postgresql://"))
    assert "no host attribute" not in page.content()
    names = page.locator("form [name]").evaluate_all('els => els.map(e => e.getAttribute("name"))')
    assert names.index("target") < names.index("accounts") < names.index("backoff"), names
    page.locator("input[name=userCount]").fill("10")
    page.locator("input[name=spawnRate]").fill("10")
    page.locator("input[name=accounts]").fill("10")
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    ui.wait_for(lambda d: d["state"] == "running" and d["settings"]["accounts"] == 10 and d["totals"]["conflicts"] > 0)

    # The Contention tab, live: its numbers move while the test runs.
    page.get_by_role("tab", name="Contention").click()
    rate = page.get_by_role("row").filter(has=page.get_by_role("cell", name="conflict rate", exact=True))
    expect(rate).to_contain_text(re.compile(r"[0-9.]+%"))
    counts = "attempts / commits / transactions"
    first = _cell(page, counts)
    expect(page.get_by_role("row").filter(has_text=counts)).not_to_contain_text(first, timeout=20_000)
    assert 0.0 < float(_cell(page, "conflict rate").rstrip("%")) < 100.0
    page.screenshot(path=str(tmp_path / "locust-contention-tab.png"))

    # loadgen's own charts page, filled by its polling script.
    charts = PageWatch.on(context.new_page())
    charts.page.set_viewport_size({"width": 1400, "height": 1100})
    charts.page.goto(ui.base + "/contention")
    expect(charts.page.locator("body[data-updated]")).to_be_attached()
    expect(charts.page.locator("#conflict-rate")).to_have_text(re.compile(r"^[0-9.]+%$"))
    expect(charts.page.locator("#retries-per-commit")).to_have_text(re.compile(r"^[0-9]+\.[0-9]{4}$"))
    expect(charts.page.locator("#timeline path").first).to_be_attached()  # the timeline was drawn
    expect(charts.page.locator("#outcomes").get_by_role("cell", name="40001", exact=True)).to_be_visible()
    charts.page.screenshot(path=str(tmp_path / "contention.png"))

    # Stopped with the UI's own button: the run is written, the page says so.
    page.get_by_role("button", name="Stop").click()
    # Users finish their transaction, then the run is written and checked: seconds on a busy machine.
    stopped = ui.wait_for(lambda d: d["state"] == "stopped" and d["run_dir"] is not None, timeout=90)
    expect(page.get_by_text("stopped", exact=False).first).to_be_visible(timeout=30_000)
    assert Path(stopped["run_dir"]).parent == tmp_path / "runs"
    assert (Path(stopped["run_dir"]) / "attempts.parquet").is_file()
    expect(charts.page.locator("#state")).to_have_text("stopped")

    watched.assert_clean(ui.base + "/")
    charts.assert_clean(ui.base + "/")
    keep = os.environ.get("LOADGEN_KEEP_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in ("contention.png", "locust-contention-tab.png"):
            shutil.copy(tmp_path / shot, Path(keep) / shot)


@pytest.mark.slow
def test_distributed_master_shows_the_workers_totals(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    master_port = _free_port()
    ui = _start_ui(tmp_path, "--", "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port))
    locustfile = LOCUSTFILE
    workers = []
    try:
        for i in range(2):
            with (tmp_path / f"worker{i}.log").open("wb") as out:
                workers.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "locust",
                            "-f",
                            str(locustfile),
                            "--worker",
                            "--master-host",
                            "127.0.0.1",
                            "--master-port",
                            str(master_port),
                        ],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                )
        ui.wait_for(lambda d: d["role"] == "master" and d["workers"] == 2)
        assert ui.post("/swarm", {"user_count": 10, "spawn_rate": 10, "accounts": 10})["success"]
        # Workers report every 3 s: wait for both reports to carry attempts.
        d = ui.wait_for(lambda d: d["totals"]["commits"] >= 100 and len(d["timeline"]) >= 2, timeout=40)
        later = ui.wait_for(lambda x: x["totals"]["attempts"] > d["totals"]["attempts"], timeout=20)
        t = later["totals"]
        assert 0.0 < t["conflict_rate"] < 1.0
        assert sum(o["count"] for o in t["outcomes"]) == t["attempts"]
        assert sum(h["transactions"] for h in t["attempts_histogram"]) == t["transactions"]
        assert t["hot_accounts"] and all(1 <= a["account"] <= 10 for a in t["hot_accounts"])
        assert ui.post("/stop")["success"]
        ui.wait_for(lambda d: d["state"] == "stopped")
        # Workers rejoin after the stop timeout; only workers the master knows get its quit.
        ui.wait_for(lambda d: d["workers"] == 2, timeout=20)
        assert _stop_ui(ui) == 0
        for w in workers:
            assert w.wait(timeout=30) is not None  # the master's quit reaches its workers
    finally:
        _stop_ui(ui)
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    assert _client_backends(embedded) == 0


@pytest.mark.slow
def test_secrets_stay_out_of_pages_logs_and_files(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    secret = "s3cret-pw-4711"
    dsn = embedded.url.replace("postgres@", f"postgres:{secret}@", 1)
    assert secret in dsn
    ui = _start_ui(tmp_path, "--target", "postgres", "--dsn", dsn)
    try:
        page = ui.get("/").decode()
        assert '"dsn": {' in page and secret not in page  # the field is there, masked and empty
        assert ui.post("/swarm", {"user_count": 4, "spawn_rate": 4, "accounts": 50, "target": "postgres"})["success"]
        running = ui.wait_for(lambda d: d["totals"]["commits"] > 20)
        assert running["settings"]["target"] == "postgres" and running["error"] is None
        assert "***" in running["settings"]["dsn"]
        live_json = ui.get("/contention/download/run.json").decode()
        assert ui.post("/stop")["success"]
        stopped = ui.wait_for(lambda d: d["state"] == "stopped" and d["run_dir"] is not None)
        seen = [page, json.dumps(running), live_json, ui.get("/stats/requests").decode(), ui.get("/").decode()]
        seen += [p.read_text() for p in Path(stopped["run_dir"]).glob("*.json")]
    finally:
        _stop_ui(ui)
    seen.append(ui.log.read_text())
    assert all(secret not in text for text in seen)


@pytest.mark.slow
def test_plain_locust_masks_a_dsn_given_on_its_command_line(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    secret = "s3cret-pw-0815"
    dsn = embedded.url.replace("postgres@", f"postgres:{secret}@", 1)
    port = _free_port()
    locustfile = LOCUSTFILE
    with (tmp_path / "locust.log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(locustfile), "--web-port", str(port), "--target", "postgres", "--dsn", dsn],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    ui = UI(proc, port, tmp_path / "locust.log")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = ui.get("/").decode()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, ui.log.read_text()
                time.sleep(0.3)
        assert _listening_addresses(port) == {"127.0.0.1"}
        assert '"dsn": {' in page and secret not in page
        assert secret not in json.dumps(ui.json("/contention/data"))
    finally:
        _stop_ui(ui)


@pytest.mark.slow
def test_ui_bad_input_is_one_line_and_exit_2(embedded: EmbeddedPostgres) -> None:
    from commandline import run_cli

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_cli("ui", "--web-port", str(port), timeout=60)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("ui", "--target", "postgres", timeout=60)
    assert r.returncode == 2 and "needs --dsn" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_scenario_sets_the_start_form_defaults(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    scenario = tmp_path / "hot.toml"
    scenario.write_text('accounts = 37\nusers = 12\n[retry]\nmax_attempts = 7\nbackoff = "full-jitter"\n')
    ui = _start_ui(tmp_path, str(scenario))
    try:
        page = ui.get("/").decode()
        # Locust renders the start form's defaults into the page as JSON.
        assert re.search(r'"accounts": \{[^}]*"default_value": 37', page), "accounts default not 37"
        assert re.search(r'"max_attempts": \{[^}]*"default_value": 7', page), "max attempts default not 7"
        assert "full-jitter" in page
        started = ui.post("/swarm", {"user_count": 12, "spawn_rate": 12, "accounts": 37, "max_attempts": 7, "backoff": "full-jitter"})
        assert started.get("success") is True, started
        data = ui.wait_for(lambda d: d.get("state") == "running" and len(d.get("timeline") or []) > 0)
        assert data["settings"]["accounts"] == 37 and data["settings"]["max_attempts"] == 7
        assert data["settings"]["backoff"] == "full-jitter"
    finally:
        _stop_ui(ui)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_during_a_test_writes_it_without_connection_errors(sig: signal.Signals, embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    """Started in the background by a script (SIGINT ignored, as a shell leaves it): Ctrl-C still stops it, cleanly;
    SIGTERM (a service manager, ``kill``) does the same."""
    port = _free_port()
    log = tmp_path / "ui.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadgen.cli", "ui", "--web-port", str(port), "--out", str(tmp_path / "runs")],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ),
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    ui = UI(proc, port, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                ui.get("/contention/data")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        assert ui.post("/swarm", {"user_count": 30, "spawn_rate": 30, "accounts": 10})["success"]
        ui.wait_for(lambda d: d["state"] == "running" and d["totals"]["attempts"] >= 300)
        t0 = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert took < 10, f"took {took:.1f} s to stop"
    # Ctrl-C stops the test, then leaves (0); SIGTERM is Locust's own shutdown of a test still running (130, as `loadgen run`).
    assert code == (0 if sig == signal.SIGINT else 130), log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()
    (run_dir,) = (tmp_path / "runs").iterdir()
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["invariants_hold"], doc["invariants"]
    outcomes = pq.read_table(run_dir / "attempts.parquet").column("outcome").to_pylist()
    assert len(outcomes) == doc["summary"]["attempts"] > 300
    assert "connection_error" not in outcomes
    assert doc["connections"]["left_open"] == 0


@pytest.mark.slow
def test_the_web_uis_cards_chart_and_last_second_lead_with_its_run_json(
    embedded: object, tmp_path: Path, watched: PageWatch, context: Any
) -> None:
    """One conflict rate (tests/results/test_contention_rate.py), in the web UI: a hot test in cc nowait
    (55P03 and 40001 differ by more than 2x); the cards, the chart's data and Locust's
    "last second" row lead with the figure of that test's run.json, in Chromium."""
    ui = _start_ui(tmp_path)
    try:
        form = {"user_count": 30, "spawn_rate": 30, "accounts": 10, "cc": "nowait"}
        assert ui.post("/swarm", form)["success"]
        ui.wait_for(lambda d: d["state"] == "running" and d["totals"]["attempts"] > 1000 and len(d["timeline"]) >= 2)
        assert ui.post("/stop")["success"]
        data = ui.wait_for(lambda d: d["state"] == "stopped" and d["run_dir"] is not None, timeout=90)
        doc = json.loads((Path(data["run_dir"]) / "run.json").read_text())
        rate = doc["summary"]["conflict_rate"]
        shown = f"{rate:.2%}"
        kinds = sorted(doc["summary"]["conflicts_by_kind"].values())
        assert len(kinds) >= 2 and kinds[-1] > 2 * kinds[-2]
        # The cards and the chart's data, as the page gets them.
        assert data["totals"]["conflict_rate"] == pytest.approx(rate)
        points = data["timeline"]
        assert sum(p["conflicts"] for p in points) / sum(p["attempts"] for p in points) == pytest.approx(rate, abs=5e-5)

        # In the browser: the contention page's first card, and Locust's own tab with its "last second" row.
        page = watched.page
        page.goto(ui.base + "/contention")
        expect(page.locator("body[data-updated]")).to_be_attached()
        expect(page.locator(".card .v").first).to_have_text(shown)
        expect(page.locator("#conflict-rate-label")).to_have_text(CONFLICT_RATE)
        last = points[-1]["conflict_rate"]
        assert last is not None
        tab = PageWatch.on(context.new_page())
        tab.page.goto(ui.base + "/")
        tab.page.get_by_role("tab", name="Contention").click()
        row = tab.page.get_by_role("row").filter(has=tab.page.get_by_role("cell", name=CONFLICT_RATE, exact=True))
        expect(row).to_contain_text(shown)
        now = tab.page.get_by_role("row").filter(has=tab.page.get_by_role("cell", name=f"{CONFLICT_RATE}, last second", exact=True))
        expect(now).to_contain_text(f"{last:.2%}")
        first_row = tab.page.get_by_role("row").nth(1)
        expect(first_row).to_contain_text(CONFLICT_RATE)
        watched.assert_clean(ui.base + "/")
        tab.assert_clean(ui.base + "/")
    finally:
        _stop_ui(ui)
