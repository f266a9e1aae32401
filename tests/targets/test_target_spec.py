"""Targets as data: one TargetSpec, built the same way from a scenario file, the command line and
the web form, one make_target for every kind, each refusal declared once (by the kinds table)."""

from __future__ import annotations

from pathlib import Path

import pytest
from offline_aws import ENDPOINT

from loadgen.cli.arguments import target_spec
from loadgen.cli.parser import build_parser
from loadgen.errors import ConfigError
from loadgen.model.scenariofile import load_text
from loadgen.targets.base import EmbeddedTarget, PostgresTarget
from loadgen.targets.dsql import DsqlTarget
from loadgen.targets.embedded import EmbeddedPostgres
from loadgen.targets.rehearsal import DsqlRehearsalTarget
from loadgen.targets.spec import KINDS, TargetSpec, make_target

DSN = "postgresql://app:s3cret@db.example.com:5432/postgres"


def _from_command_line(*argv: str, scenario: str | None = None) -> TargetSpec:
    args = build_parser().parse_args(["run", *argv])
    sf = load_text(scenario, "s.toml") if scenario is not None else None
    return target_spec(args, sf)


def test_the_file_the_command_line_and_the_form_build_the_same_spec() -> None:
    expected = TargetSpec("postgres", dsn=DSN, schema="bank")
    assert _from_command_line("--target", "postgres", "--dsn", DSN, "--schema", "bank") == expected
    assert _from_command_line(scenario=f'users = 2\n[target]\nkind = "postgres"\ndsn = "{DSN}"\nschema = "bank"\n') == expected
    assert TargetSpec.from_options({"kind": "postgres", "dsn": DSN, "schema": "bank", "endpoint": ""}) == expected  # the form's way
    dsql = TargetSpec("dsql", endpoint=ENDPOINT, region="us-east-1", db_user="app")
    assert _from_command_line("--target", "dsql", "--endpoint", ENDPOINT, "--region", "us-east-1", "--db-user", "app") == dsql
    file = f'users = 2\n[target]\nkind = "dsql"\nendpoint = "{ENDPOINT}"\nregion = "eu-west-1"\n'
    # The command line's options win over the file's; --target's default gives way to the file's kind.
    assert _from_command_line("--region", "us-east-1", "--db-user", "app", scenario=file) == dsql


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "embedded", "dsn": DSN}, "--dsn is only for --target postgres"),
        ({"kind": "embedded", "schema": "s"}, "--schema is only for --target postgres"),
        ({"kind": "postgres", "dsn": DSN, "endpoint": ENDPOINT}, "--endpoint is only for --target dsql"),
        ({"kind": "dsql", "dsn": DSN, "max_connections": 5}, "--dsn is only for --target postgres"),
        ({"kind": "embedded", "db_user": "a", "token_expiry_s": 60}, "--db-user, --token-expiry are only for --target dsql"),
        ({"kind": "dsql", "endpoint": ENDPOINT, "dialect": "postgresql"}, "--target dsql always uses the dsql dialect"),
        ({"kind": "oracle"}, "unknown target 'oracle': choose one of embedded, postgres, dsql"),
        ({"kind": "postgres", "dsn": DSN, "dialect": "mysql"}, "--dialect must be one of postgresql, dsql"),
        ({"kind": "postgres", "host": "h"}, "unknown option(s) host"),
    ],
)
def test_each_refusal_is_declared_once_and_said_in_one_line(options: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        TargetSpec.from_options(options)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_the_kinds_table_declares_what_each_target_takes() -> None:
    assert list(KINDS) == ["embedded", "postgres", "dsql"]
    assert KINDS["embedded"].options == () and KINDS["postgres"].options == ("dsn", "schema")
    assert "endpoint" in KINDS["dsql"].options and KINDS["dsql"].dialect == "dsql"
    assert (TargetSpec().sql_dialect, TargetSpec("dsql").sql_dialect, TargetSpec(dialect="dsql").sql_dialect) == (
        "postgresql",
        "dsql",
        "dsql",
    )


def test_make_target_makes_every_kind_from_a_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_target(TargetSpec()), EmbeddedTarget)
    pg = make_target(TargetSpec("postgres", dsn=DSN, schema="bank"))
    assert isinstance(pg, PostgresTarget) and (pg.schema, pg.schema_given) == ("bank", True)
    with pytest.raises(ConfigError, match="needs --dsn"):
        make_target(TargetSpec("postgres"))
    with pytest.raises(ConfigError, match="--endpoint"):
        make_target(TargetSpec("dsql"))
    dsql = make_target(TargetSpec("dsql", endpoint=ENDPOINT, sslmode="require", db_user="app"))  # signs nothing yet: no AWS needed
    assert isinstance(dsql, DsqlTarget) and (dsql.region, dsql.db_user, dsql.dialect) == ("us-east-1", "app", "dsql")
    rehearsal = make_target(TargetSpec("postgres", dsn=DSN, dialect="dsql"))  # DSQL's rules rehearsed on PostgreSQL
    assert isinstance(rehearsal, DsqlRehearsalTarget) and isinstance(rehearsal.underlying, PostgresTarget) and rehearsal.audit is not None
    rehearsal.audit.cleanup()


def test_a_spec_shows_no_secret() -> None:
    spec = TargetSpec("postgres", dsn=DSN)
    assert "s3cret" not in repr(spec) and "s3cret" not in str(spec.describe())
    assert "password=***" in spec.describe()["dsn"] and spec.describe()["kind"] == "postgres"


@pytest.mark.slow
def test_a_notebook_builds_and_uses_a_target_in_three_lines(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    """README's "From a notebook", on the embedded target (the README's example names a PostgreSQL server)."""
    from loadgen.engine.runner import run
    from loadgen.model.scenario import Scenario
    from loadgen.results.rundir import read_run

    target = make_target(TargetSpec("embedded"))
    result = run(Scenario(accounts=50, users=2, duration_s=1.0), target, tmp_path)
    assert result.summary["attempts"] > 0 and result.invariants_hold
    record = read_run(result.run_dir)
    assert record is not None and record.sections.summary.attempts == result.summary["attempts"]


def test_a_spec_travels_as_its_options() -> None:
    """How a master sends its target to a worker (loadgen.engine.distributed.target_setup): the options, as JSON."""
    import json

    spec = TargetSpec("postgres", dsn=DSN, schema="bench", dialect="dsql")
    assert TargetSpec.from_options(json.loads(json.dumps(spec.to_options()))) == spec
    assert "s3cret" not in repr(spec) and "s3cret" in spec.to_options()["dsn"]  # the options are for the wire, never a log
    with pytest.raises(ConfigError, match="not both"):
        make_target(TargetSpec("dsql", endpoint=ENDPOINT, sslrootcert="system", sslrootcert_pem="-----BEGIN CERTIFICATE-----"))
