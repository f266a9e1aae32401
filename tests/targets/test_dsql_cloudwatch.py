"""The cluster's own counters: DSQL's CloudWatch metrics read with botocore's Stubber on the real request shapes,
recorded in run.json and shown in the report beside loadgen's counts."""

from __future__ import annotations

import locust  # noqa: F401  - must precede psycopg

# isort: split

import datetime as dt
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from chromium import PageWatch
from offline_aws import CLUSTER_ID, FAKE_KEY, REGION

from loadgen.targets.dsql_cloudwatch import cluster_metrics, minute_window, read_cluster_metrics

CLUSTER = CLUSTER_ID
#: The metrics and statistics AWS's user guide documents ("Monitoring Aurora DSQL with Amazon CloudWatch").
DOCUMENTED = [
    ("OccConflicts", "Sum"),
    ("TotalTransactions", "Sum"),
    ("ReadOnlyTransactions", "Sum"),
    ("QueryTimeouts", "Sum"),
    ("CommitLatency", "Average"),
    ("TotalDPU", "Sum"),
    ("ComputeDPU", "Sum"),
    ("ReadDPU", "Sum"),
    ("WriteDPU", "Sum"),
    ("MultiRegionWriteDPU", "Sum"),
]
START = dt.datetime(2026, 12, 1, 12, 0, 30, tzinfo=dt.UTC)
END = dt.datetime(2026, 12, 1, 12, 2, 10, tzinfo=dt.UTC)


@pytest.fixture
def client() -> Any:
    session = boto3.session.Session(aws_access_key_id=FAKE_KEY, aws_secret_access_key="fake", region_name=REGION)
    return session.client("cloudwatch")


def _request(start: dt.datetime, end: dt.datetime, token: str | None = None) -> dict[str, Any]:
    queries = [
        {
            "Id": f"m{i}",
            "MetricStat": {
                "Metric": {"Namespace": "AWS/AuroraDSQL", "MetricName": name, "Dimensions": [{"Name": "ClusterId", "Value": CLUSTER}]},
                "Period": 60,
                "Stat": stat,
            },
            "ReturnData": True,
        }
        for i, (name, stat) in enumerate(DOCUMENTED)
    ]
    request: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end, "ScanBy": "TimestampAscending"}
    if token:
        request["NextToken"] = token
    return request


def _results(values: dict[str, list[float]], status: str = "Complete") -> list[dict[str, Any]]:
    out = []
    for i, (name, _) in enumerate(DOCUMENTED):
        v = values.get(name, [])
        stamps = [dt.datetime(2026, 12, 1, 12, k, tzinfo=dt.UTC) for k in range(len(v))]
        out.append({"Id": f"m{i}", "Label": name, "Timestamps": stamps, "Values": v, "StatusCode": status})
    return out


def test_the_window_is_the_whole_minutes_holding_the_measured_period() -> None:
    first, last = minute_window(START, END)
    assert (first, last) == (dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, 12, 3, tzinfo=dt.UTC))
    assert minute_window(START, START) == (first, first + dt.timedelta(minutes=1))


def test_one_request_reads_the_documented_metrics_and_adds_up_every_page(client: Any) -> None:
    first, last = minute_window(START, END)
    with Stubber(client) as stub:
        stub.add_response(
            "get_metric_data",
            {
                "MetricDataResults": _results(
                    {"OccConflicts": [3.0], "TotalTransactions": [100.0], "CommitLatency": [6.0], "TotalDPU": [1.5], "WriteDPU": [1.0]},
                    status="PartialData",
                ),
                "NextToken": "page-2",
            },
            _request(first, last),
        )
        stub.add_response(
            "get_metric_data",
            {
                "MetricDataResults": _results(
                    {"OccConflicts": [4.0], "TotalTransactions": [120.0], "CommitLatency": [8.0], "TotalDPU": [2.5]}
                )
            },
            _request(first, last, "page-2"),
        )
        doc = read_cluster_metrics(client, CLUSTER, START, END)
        stub.assert_no_pending_responses()
    m = doc["metrics"]
    assert m["OccConflicts"]["value"] == 7.0 and m["TotalTransactions"]["value"] == 220.0
    assert m["CommitLatency"]["value"] == 7.0, "a P50 per minute is averaged, not added"
    assert m["TotalDPU"]["value"] == 4.0 and m["WriteDPU"]["value"] == 1.0
    assert m["MultiRegionWriteDPU"]["value"] is None, "no data point: None, not 0"
    assert doc["window"] == {"start": first.isoformat(), "end": last.isoformat(), "period_s": 60, "minutes": 3}
    assert doc["note"] == "2 of 3 minutes published when read: CloudWatch publishes DSQL's metrics a few minutes late"
    assert doc["source"] == f"CloudWatch AWS/AuroraDSQL, ClusterId={CLUSTER}"


def test_no_data_yet_is_one_line_not_a_failure(client: Any) -> None:
    with Stubber(client) as stub:
        stub.add_response("get_metric_data", {"MetricDataResults": _results({})}, _request(*minute_window(START, END)))
        doc = cluster_metrics(CLUSTER, REGION, None, START, END, make_client=lambda: client)
    assert doc["note"] == "no data yet: CloudWatch publishes DSQL's metrics a few minutes late"
    assert all(v["value"] is None for v in doc["metrics"].values())


def test_missing_permission_is_one_line_not_a_failure(client: Any) -> None:
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_metric_data",
            "AccessDenied",
            "User is not authorized to perform: cloudwatch:GetMetricData",
            403,
            expected_params=_request(*minute_window(START, END)),
        )
        doc = cluster_metrics(CLUSTER, REGION, None, START, END, make_client=lambda: client)
    assert doc == {
        "unavailable": "CloudWatch: AccessDenied: User is not authorized to perform: cloudwatch:GetMetricData"
        " (the identity needs cloudwatch:GetMetricData)"
    }


def test_no_credentials_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    doc = cluster_metrics(CLUSTER, REGION, None, START, END)
    assert list(doc) == ["unavailable"] and doc["unavailable"].startswith("CloudWatch: Unable to locate credentials")


@pytest.mark.slow
def test_a_run_records_the_clusters_counters_and_the_report_shows_them_beside_loadgens(
    embedded: Any, tmp_path: Path, client: Any, watched: PageWatch
) -> None:
    """A rehearsal run (DSQL's path on the embedded server) whose target reads CloudWatch through the Stubber:
    the request covers the measured window, run.json keeps the answer, the report sets it beside loadgen's counts."""
    from loadgen.engine import runner
    from loadgen.model.scenario import Scenario
    from loadgen.targets.base import EmbeddedTarget
    from loadgen.targets.dialect import DsqlDialectTarget

    target = DsqlDialectTarget(EmbeddedTarget(embedded))
    windows: list[tuple[dt.datetime, dt.datetime]] = []

    def counters(start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
        windows.append((start, end))
        with Stubber(client) as stub:
            stub.add_response(
                "get_metric_data",
                {"MetricDataResults": _results({"OccConflicts": [41.0], "TotalTransactions": [2000.0], "TotalDPU": [12.5]})},
                _request(*minute_window(start, end)),
            )
            return cluster_metrics(CLUSTER, REGION, None, start, end, make_client=lambda: client)

    target.cluster_counters = counters
    try:
        result = runner.run(Scenario(accounts=20, users=4, duration_s=1.0, spawn_rate=4.0, seed=3), target, tmp_path)
    finally:
        if target.audit is not None:
            target.audit.cleanup()
    doc = json.loads((result.run_dir / "run.json").read_text())
    ((start, end),) = windows
    first_s, last_s = result.attempt_span or (0.0, 0.0)
    assert (start.timestamp(), end.timestamp()) == pytest.approx((first_s, last_s)), "the measured window: first attempt to last"
    assert doc["started_at"] <= start.isoformat() and end.isoformat() <= doc["ended_at"]
    assert doc["cluster_metrics"]["metrics"]["OccConflicts"]["value"] == 41.0

    assert result.report is not None
    page = watched.page
    page.goto(result.report.resolve().as_uri(), wait_until="load")
    section = page.locator("#cluster")
    assert section.locator("h2").inner_text() == "The cluster's own counters"
    rows = {r.locator("td").nth(0).inner_text(): r for r in section.locator("tr").all() if r.locator("td").count()}
    conflicts = rows["conflicts (OCC aborts)"].locator("td")
    assert conflicts.nth(1).inner_text() == f"{doc['summary']['conflicts']:,} attempts", "loadgen's figure is run.json's"
    assert conflicts.nth(2).inner_text() == "41 transactions (OccConflicts)"
    assert rows["DPUs consumed"].locator("td").nth(2).inner_text().startswith("12.5 DPU")
    assert "whatever else ran in those minutes" in section.inner_text()
    assert page.locator("nav a[href='#cluster']").count() == 1
    watched.assert_clean(result.report.resolve().as_uri())
