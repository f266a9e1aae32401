"""What ``loadgen run`` shows while it runs: a live display on a terminal, plain lines in a pipe,
and Locust's ``--csv``/``--html`` habits."""

from __future__ import annotations

import csv
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from commandline import run_cli

from loadgen.results.export import STATS_COLUMNS

pytestmark = pytest.mark.slow


def _run_on_a_terminal(*args: str, timeout: float = 180) -> tuple[int, str]:
    """``loadgen`` with a pseudo-terminal for stdout and stderr, as a person runs it."""
    parent, child = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="140", LINES="30")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "loadgen.cli", *args], stdin=subprocess.DEVNULL, stdout=child, stderr=child, env=env)
    os.close(child)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([parent], [], [], 0.5)[0]:
                try:
                    data = os.read(parent, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(parent)
    return rc, b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_a_live_display(embedded: object, tmp_path: Path) -> None:
    rc, screen = _run_on_a_terminal("run", "--accounts", "10", "--users", "10", "--duration", "4", "--out", str(tmp_path))
    assert rc == 0, screen[-3000:]
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)  # the escape codes that redraw it
    assert "━" in plain  # a progress bar
    assert re.search(r"\d:\d\d:\d\d elapsed\s+\d:\d\d:\d\d left", plain), plain[-2000:]
    assert re.search(r"conflict rate \d+\.\d\d%\s+users 10\s+commits/s [\d,]+", plain), plain[-2000:]  # the rate first
    assert "failed attempts" not in plain  # not the plain lines
    assert "money_conserved ok" in plain and "results" in plain  # the summary follows
    assert "\x1b[" in screen  # redrawn in place, not printed line after line


def test_a_pipe_gets_plain_lines_and_quiet_gets_none(embedded: object, tmp_path: Path) -> None:
    r = run_cli("run", "--accounts", "10", "--users", "10", "--duration", "3", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if re.match(r"\s+\d+s\s+conflict rate", ln)]
    assert len(lines) >= 2, r.stdout
    assert all(re.match(r"\s+\d+s\s+conflict rate\s+\d+\.\d\d%\s+users", ln) and "attempts" in ln for ln in lines)
    assert "━" not in r.stdout and "\x1b[" not in r.stdout
    q = run_cli("run", "--accounts", "10", "--users", "10", "--duration", "2", "--out", str(tmp_path), "-q")
    assert q.returncode == 0, q.stderr
    assert not [ln for ln in q.stdout.splitlines() if re.match(r"\s+\d+s\s+users", ln)]


def test_csv_and_html_as_locust_writes_them(embedded: object, tmp_path: Path) -> None:
    prefix = tmp_path / "out" / "bank"
    html = tmp_path / "out" / "report.html"
    r = run_cli(
        "run",
        "--accounts",
        "10",
        "--users",
        "10",
        "--duration",
        "3",
        "--out",
        str(tmp_path / "runs"),
        "-q",
        "--csv",
        str(prefix),
        "--html",
        str(html),
    )
    assert r.returncode == 0, r.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    doc = json.loads((run_dir / "run.json").read_text())
    s = doc["summary"]

    with open(f"{prefix}_stats.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert list(row) == ["run_id", "cell", *STATS_COLUMNS]
    assert row["run_id"] == doc["run_id"]
    assert int(row["attempts"]) == s["attempts"] and int(row["commits"]) == s["commits"] and int(row["conflicts"]) == s["conflicts"]
    assert float(row["conflict_rate"]) == pytest.approx(s["conflict_rate"])
    assert float(row["transaction_p99_ms"]) == pytest.approx(s["transaction_latency_ms"]["p99"])
    assert row["invariants_hold"] == "True"

    with open(f"{prefix}_failures.csv", newline="") as f:
        failures = list(csv.DictReader(f))
    by = {(x["outcome"], x["sqlstate"]): int(x["occurrences"]) for x in failures}
    # The conflicts are every contention failure: 40001s and (occ mode) 55P03s alike.
    assert sum(n for (o, _), n in by.items() if o in ("conflict", "lock_timeout", "deadlock")) == s["conflicts"] > 0
    assert by[("conflict", "40001")] > 0
    assert sum(by.values()) == s["attempts"] - s["commits"]

    with open(f"{prefix}_attempts.csv", newline="") as f:
        attempts = list(csv.DictReader(f))
    assert len(attempts) == s["attempts"]
    assert {"run_id", "txn_id", "attempt", "latency_ms", "outcome", "sqlstate", "payer", "payee"} <= set(attempts[0])

    text = html.read_text()
    assert f"{s['conflict_rate']:.2%}" in text and 'id="headline"' in text
    assert f"html              {html}" in r.stdout
