"""DSQL options refused in one line before anything is created: ``--ephemeral`` checks the whole run before it makes a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from commandline import run_cli
from offline_aws import ENDPOINT, FAKE_KEY, NO_AWS_FILES, REGION

from loadgen.errors import ConfigError
from loadgen.model.scenario import Scenario
from loadgen.model.scenariofile import Cell
from loadgen.targets.base import check_cells

#: Fake credentials, no config files, and no route to AWS: any AWS call would fail (or hang) instead of creating anything.
NO_AWS = {
    **NO_AWS_FILES,
    "AWS_ACCESS_KEY_ID": FAKE_KEY,
    "AWS_SECRET_ACCESS_KEY": "fake",
    "AWS_ENDPOINT_URL_DSQL": "http://127.0.0.1:9",  # a create_cluster call would fail to connect: the message says so
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sslrootcert", "/nonexistent/ca.pem"], "--sslrootcert /nonexistent/ca.pem: no such file"),
        (["--sslmode", "disable"], "--sslmode must be one of"),
        (["--sslmode", "require", "--sslrootcert", "system"], "require checks no certificate"),
        (["--chaos-kill-every", "5s"], "fault injection (--chaos-*) is for PostgreSQL targets"),
        (["--processes", "2", "--read-mix", "0.5"], "--processes/--master"),
        (["--shape", "multi-leg", "--legs", "2999", "--accounts", "5000"], "beyond DSQL's 3,000 rows per transaction"),
    ],
)
def test_ephemeral_refuses_a_bad_run_before_creating_a_cluster(extra: list[str], message: str, tmp_path: Path) -> None:
    result = run_cli("run", "--target", "dsql", "--ephemeral", "--region", REGION, "--out", str(tmp_path), *extra, env=NO_AWS, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "creating" not in result.stdout, "no cluster may be created for a run that is refused"


def _multi_leg(legs: int) -> list[Cell]:
    return [Cell(0, {}, Scenario(accounts=5000, users=1, transaction="multi-leg", legs=legs))]


def test_legs_within_dsql_row_limit() -> None:
    """legs + 2 rows per transfer (payer, payees, ledger): 2,998 legs write exactly 3,000 rows, which DSQL allows."""
    check_cells("dsql", _multi_leg(2998))
    check_cells("postgresql", _multi_leg(4000))
    with pytest.raises(ConfigError, match=r"legs = 2999 writes 3,001 rows per transfer.*at most 2,998 legs"):
        check_cells("dsql", _multi_leg(2999))


@pytest.mark.parametrize(("extra", "file_rate", "expected"), [([], None, 1000.0), ([], 7.0, 7.0), (["--spawn-rate", "3"], 7.0, 3.0)])
def test_dsql_users_start_at_the_scenarios_spawn_rate(
    extra: list[str], file_rate: float | None, expected: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection budget paces the opening of connections (the warm-up), not the users: before, a DSQL run
    started 1,000 users at 80/s inside the measured period, whatever the scenario said."""
    from loadgen.cli.parser import build_parser
    from loadgen.cli.run import plan_run

    for name, value in NO_AWS.items():
        monkeypatch.setenv(name, value)
    args = ["run", "--target", "dsql", "--endpoint", ENDPOINT, "--accounts", "5000", "--users", "1000", *extra]
    if file_rate is not None:
        scenario = tmp_path / "paced.toml"
        scenario.write_text(f"name = 'paced'\nusers = 1000\naccounts = 5000\nspawn_rate = {file_rate}\n")
        args = ["run", str(scenario), "--target", "dsql", "--endpoint", ENDPOINT, *extra]
    sf, target, _, _ = plan_run(build_parser().parse_args(args))
    assert target.kind == "dsql"
    assert [c.scenario.spawn_rate for c in sf.cells] == [expected]
