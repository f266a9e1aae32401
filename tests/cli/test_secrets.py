"""A sentinel password must not appear in anything loadgen prints or writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from commandline import run_cli

from loadgen.targets.embedded import EmbeddedPostgres

SENTINEL = "Sentinel-pw-7f3a9c"


@pytest.mark.slow
def test_password_never_reaches_outputs(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    # The embedded server trusts its unix socket, so the password is accepted and unused:
    # what matters here is where loadgen itself might copy it.
    dsn = f"postgresql://postgres:{SENTINEL}@/postgres?host={embedded.socket_dir}&port=5432"
    out = tmp_path / "out"
    proc = run_cli("run", "--target", "postgres", "--dsn", dsn, "--accounts", "10", "--users", "5", "--duration", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert SENTINEL not in proc.stdout + proc.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "run.json" for p in files) and any(p.name == "attempts.parquet" for p in files)
    for p in files:
        assert SENTINEL.encode() not in p.read_bytes(), f"{p} holds the password"
    run_json = next(p for p in files if p.name == "run.json").read_text()
    assert "***" in run_json  # the DSN is recorded, redacted
