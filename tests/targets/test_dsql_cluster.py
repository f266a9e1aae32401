"""Cluster lifecycle against botocore's Stubber: which calls, with what, in what order; deletion on failure."""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from offline_aws import CLUSTER_ID, FAKE_KEY, NO_AWS_FILES, REGION

from loadgen.errors import ConfigError, TargetError
from loadgen.targets.dsql_cluster import cluster_id_of, create_cluster, delete_cluster, ephemeral_cluster, parse_tags

ID = CLUSTER_ID
ARN = f"arn:aws:dsql:{REGION}:123456789012:cluster/{ID}"
NOW = dt.datetime(2025, 12, 1, tzinfo=dt.UTC)


@pytest.fixture
def client() -> Any:
    c = boto3.session.Session(aws_access_key_id=FAKE_KEY, aws_secret_access_key="fake", region_name=REGION).client("dsql")
    return c


def _cluster(status: str, **extra: Any) -> dict[str, Any]:
    return {"identifier": ID, "arn": ARN, "status": status, "creationTime": NOW, "deletionProtectionEnabled": False, **extra}


def _expect_create(stub: Stubber, protection: bool, tags: dict[str, str]) -> None:
    stub.add_response(
        "create_cluster",
        _cluster("CREATING", endpoint=f"{ID}.dsql.{REGION}.on.aws"),
        {"deletionProtectionEnabled": protection, "tags": tags, "clientToken": ANY},
    )
    stub.add_response("get_cluster", _cluster("CREATING"), {"identifier": ID})
    stub.add_response("get_cluster", _cluster("ACTIVE"), {"identifier": ID})


def _expect_get(stub: Stubber, status: str, protection: bool = False) -> None:
    stub.add_response("get_cluster", _cluster(status, deletionProtectionEnabled=protection), {"identifier": ID})


def _expect_gone(stub: Stubber) -> None:
    stub.add_client_error("get_cluster", "ResourceNotFoundException", "Cluster not found", 404, expected_params={"identifier": ID})


def _expect_update(stub: Stubber, protection: bool) -> None:
    stub.add_response(
        "update_cluster",
        {"identifier": ID, "arn": ARN, "status": "UPDATING", "creationTime": NOW},
        {"identifier": ID, "deletionProtectionEnabled": protection},
    )


def _expect_delete_call(stub: Stubber) -> None:
    stub.add_response(
        "delete_cluster",
        {"identifier": ID, "arn": ARN, "status": "DELETING", "creationTime": NOW},
        {"identifier": ID, "clientToken": ANY},
    )


def _expect_delete(stub: Stubber, status: str = "ACTIVE", protection: bool = True) -> None:
    """Read the cluster; protection off (only if on) and settled again; delete; wait until it is gone."""
    _expect_get(stub, status, protection)
    if protection:
        _expect_update(stub, False)
        _expect_get(stub, "UPDATING")
        _expect_get(stub, status)
    _expect_delete_call(stub)
    _expect_get(stub, "DELETING")
    _expect_gone(stub)


def test_create_waits_until_active_and_gives_the_endpoint(client: Any) -> None:
    with Stubber(client) as stub:
        _expect_create(stub, True, {"created-by": "loadgen", "team": "db"})
        cluster = create_cluster(client, {"team": "db"}, delay_s=0)
        stub.assert_no_pending_responses()
    assert cluster.identifier == ID and cluster.status == "ACTIVE"
    assert cluster.endpoint == f"{ID}.dsql.{REGION}.on.aws"


def test_delete_turns_protection_off_first_and_waits_until_gone(client: Any) -> None:
    with Stubber(client) as stub:
        _expect_delete(stub)
        assert delete_cluster(client, ID, delay_s=0) == "DELETED"
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(("status", "protection"), [("IDLE", True), ("INACTIVE", True), ("IDLE", False), ("FAILED", False)])
def test_delete_takes_a_cluster_at_rest_as_it_is(client: Any, status: str, protection: bool) -> None:
    """IDLE and INACTIVE wake only on a connection: never wait for ACTIVE (the old code waited 300 s and failed)."""
    with Stubber(client) as stub:
        _expect_delete(stub, status, protection)
        assert delete_cluster(client, ID, delay_s=0, max_wait_s=1) == "DELETED"
        stub.assert_no_pending_responses()


def test_delete_waits_out_a_change_in_progress_and_retries_a_conflict(client: Any) -> None:
    naps: list[float] = []
    with Stubber(client) as stub:
        _expect_get(stub, "UPDATING", True)
        _expect_get(stub, "ACTIVE", True)
        stub.add_client_error("update_cluster", "ConflictException", "cluster is being updated", 409)
        _expect_update(stub, False)
        _expect_get(stub, "ACTIVE")
        stub.add_client_error("delete_cluster", "ConflictException", "cluster is being updated", 409)
        _expect_delete_call(stub)
        _expect_gone(stub)
        assert delete_cluster(client, ID, delay_s=0.5, sleep=naps.append) == "DELETED"
        stub.assert_no_pending_responses()
    assert naps == [0.5, 0.5], "a pause before each retry of a ConflictException"


def test_delete_of_a_cluster_already_gone_is_done(client: Any) -> None:
    with Stubber(client) as stub:
        _expect_gone(stub)
        assert delete_cluster(client, ID, delay_s=0) == "DELETED"
        stub.assert_no_pending_responses()


def test_a_failed_deletion_turns_protection_back_on(client: Any) -> None:
    with Stubber(client) as stub:
        _expect_get(stub, "ACTIVE", True)
        _expect_update(stub, False)
        _expect_get(stub, "ACTIVE")
        stub.add_client_error("delete_cluster", "AccessDeniedException", "not allowed: dsql:DeleteCluster", 403)
        _expect_update(stub, True)
        with pytest.raises(TargetError, match=r"deletion protection turned back on\): AccessDeniedException: not allowed"):
            delete_cluster(client, ID, delay_s=0)
        stub.assert_no_pending_responses()


def test_failed_ends_a_wait_at_once(client: Any) -> None:
    with Stubber(client) as stub:
        _expect_get(stub, "ACTIVE", False)
        _expect_delete_call(stub)
        _expect_get(stub, "FAILED")
        with pytest.raises(TargetError, match=f"cluster {ID} is FAILED while waiting until it is deleted"):
            delete_cluster(client, ID, delay_s=0, max_wait_s=3600)  # no hour-long wait: one poll
        stub.assert_no_pending_responses()


def test_ephemeral_cluster_is_deleted_when_the_run_fails(client: Any) -> None:
    lines: list[str] = []
    with Stubber(client) as stub:
        _expect_create(stub, False, {"created-by": "loadgen", "loadgen-ephemeral": "true"})
        _expect_delete(stub, protection=False)
        with pytest.raises(RuntimeError, match="the run broke"):
            with ephemeral_cluster(client, delay_s=0, log=lines.append) as cluster:
                assert cluster.status == "ACTIVE"
                raise RuntimeError("the run broke")
        stub.assert_no_pending_responses()
    assert any(f"cluster {ID} deleted" in line for line in lines)


def test_ephemeral_cluster_is_deleted_when_it_never_becomes_active(client: Any) -> None:
    lines: list[str] = []
    with Stubber(client) as stub:
        stub.add_response("create_cluster", _cluster("CREATING"), {"deletionProtectionEnabled": False, "tags": ANY, "clientToken": ANY})
        stub.add_response("get_cluster", _cluster("FAILED"), {"identifier": ID})  # ends the wait at once
        _expect_delete(stub, "FAILED", protection=False)
        with pytest.raises(TargetError, match="did not become ACTIVE.*is FAILED"):
            with ephemeral_cluster(client, delay_s=0, max_wait_s=600, log=lines.append):
                pytest.fail("the body must not run")
        stub.assert_no_pending_responses()


def test_aws_errors_become_one_line(client: Any) -> None:
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_cluster", "AccessDeniedException", "not allowed: dsql:GetCluster", 403, expected_params={"identifier": ID}
        )
        with pytest.raises(TargetError, match=f"cannot delete DSQL cluster {ID}: AccessDeniedException: not allowed"):
            delete_cluster(client, ID, delay_s=0)


def test_tags_and_ids() -> None:
    assert parse_tags(["team=db", "env = test"]) == {"team": "db", "env": "test"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_tags(["oops"])
    assert cluster_id_of(f"{ID}.dsql.{REGION}.on.aws") == ID
    assert cluster_id_of(ID.upper()) == ID
    with pytest.raises(ConfigError):
        cluster_id_of("not/an-id")


NO_AWS = NO_AWS_FILES


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--target", "dsql", "--ephemeral"], "no AWS Region"),
        (["run", "--ephemeral"], "use it with --target dsql"),
        (["run", "--target", "dsql", "--ephemeral", "--endpoint", f"{ID}.dsql.{REGION}.on.aws"], "leave out --endpoint"),
        (["run", "--target", "dsql", "--endpoint", f"{ID}.dsql.{REGION}.on.aws", "--lock-timeout-ms", "1"], "DSQL takes no row locks"),
        (
            ["run", "--target", "dsql", "--endpoint", f"{ID}.dsql.{REGION}.on.aws", "--dialect", "postgresql"],
            "always uses the dsql dialect",
        ),
        (["run", "--db-user", "app", "--profile", "x"], "--db-user, --profile are only for --target dsql"),
        (["dsql", "create"], "no AWS Region"),
        (["dsql", "create", "--region", REGION, "--tag", "novalue"], "KEY=VALUE"),
        (["dsql", "delete", "not/an-id", "--region", REGION], "not a DSQL cluster identifier"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from commandline import run_cli

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    result = run_cli(*args, env=NO_AWS, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_delete_takes_a_multi_region_cluster_waiting_for_its_peer_as_it_is(client: Any) -> None:
    """PENDING_SETUP (created, never peered) stays so for ever: delete it, do not wait for ACTIVE."""
    with Stubber(client) as stub:
        _expect_get(stub, "PENDING_SETUP", True)
        _expect_update(stub, False)
        _expect_get(stub, "UPDATING")
        _expect_get(stub, "PENDING_SETUP")
        _expect_delete_call(stub)
        _expect_gone(stub)
        assert delete_cluster(client, ID, delay_s=0, max_wait_s=1) == "DELETED"
        stub.assert_no_pending_responses()


@pytest.mark.parametrize("first", ["PENDING_DELETE", "DELETING"])
def test_pending_delete_is_reported_at_once_not_waited_for(client: Any, first: str) -> None:
    """PENDING_DELETE waits for the peer clusters' deletion, which this command does not do: no wait until a timeout."""
    with Stubber(client) as stub:
        _expect_get(stub, first)
        if first == "DELETING":
            _expect_get(stub, "PENDING_DELETE")
        assert delete_cluster(client, ID, delay_s=0, max_wait_s=3600) == "PENDING_DELETE"
        stub.assert_no_pending_responses()


def test_restoring_protection_retries_a_conflict(client: Any) -> None:
    """The cluster is still busy with the change that turned protection off: ConflictException, then it takes."""
    naps: list[float] = []
    with Stubber(client) as stub:
        _expect_get(stub, "ACTIVE", True)
        _expect_update(stub, False)
        _expect_get(stub, "ACTIVE")
        stub.add_client_error("delete_cluster", "AccessDeniedException", "not allowed: dsql:DeleteCluster", 403)
        stub.add_client_error("update_cluster", "ConflictException", "cluster is being updated", 409)
        _expect_update(stub, True)
        with pytest.raises(TargetError, match=r"deletion protection turned back on\)"):
            delete_cluster(client, ID, delay_s=0.25, sleep=naps.append)
        stub.assert_no_pending_responses()
    assert naps == [0.25]
