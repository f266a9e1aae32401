"""The cluster's own counters: Aurora DSQL's CloudWatch metrics for a run's measured window.

DSQL publishes, per cluster (namespace ``AWS/AuroraDSQL``, dimension ``ClusterId``;
user guide, "Monitoring Aurora DSQL with Amazon CloudWatch"): ``OccConflicts``
(transactions aborted by key-level OCC), ``TotalTransactions`` (read-only ones
included), ``ReadOnlyTransactions``, ``QueryTimeouts``, ``CommitLatency`` (the commit
phase's P50, in ms) and the Distributed Processing Units it bills: ``TotalDPU`` and its
parts ``ComputeDPU``, ``ReadDPU``, ``WriteDPU``, ``MultiRegionWriteDPU``.

One ``GetMetricData`` request (IAM action ``cloudwatch:GetMetricData``) reads them all,
in one-minute periods, over the whole minutes that hold the measured window: the
cluster counts whole minutes, so its figures also hold whatever else ran in them
(loadgen's set-up just before, its invariant reads just after, any other client). The
figures arrive in CloudWatch a few minutes late: right after a run the last minutes
may be missing, and the record says how many minutes had data.

Nothing here fails a run: no permission, no credentials or no data yet come back as
one line in ``unavailable`` (or ``note``), never as an exception.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from loadgen.errors import first_line

__all__ = ["NAMESPACE", "DIMENSION", "METRICS", "PERIOD_S", "minute_window", "read_cluster_metrics", "cluster_metrics"]

NAMESPACE = "AWS/AuroraDSQL"
DIMENSION = "ClusterId"
PERIOD_S = 60


@dataclass(frozen=True)
class Metric:
    name: str
    #: How the one-minute values add up over the window: ``Sum`` (counters, DPUs) or ``Average`` (a latency).
    stat: str
    unit: str
    what: str


METRICS: tuple[Metric, ...] = (
    Metric("OccConflicts", "Sum", "transactions", "transactions aborted by key-level OCC"),
    Metric("TotalTransactions", "Sum", "transactions", "transactions, read-only ones included"),
    Metric("ReadOnlyTransactions", "Sum", "transactions", "read-only transactions"),
    Metric("QueryTimeouts", "Sum", "queries", "queries that hit the maximum transaction time"),
    Metric("CommitLatency", "Average", "ms", "commit phase, P50 per minute, averaged over the minutes"),
    Metric("TotalDPU", "Sum", "DPU", "Distributed Processing Units billed"),
    Metric("ComputeDPU", "Sum", "DPU", "query processing"),
    Metric("ReadDPU", "Sum", "DPU", "reads from storage"),
    Metric("WriteDPU", "Sum", "DPU", "writes to storage"),
    Metric("MultiRegionWriteDPU", "Sum", "DPU", "writes replicated to peered clusters"),
)


def minute_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The whole minutes (UTC) that hold ``start`` to ``end``: CloudWatch's one-minute periods."""
    first = start.astimezone(UTC).replace(second=0, microsecond=0)
    last = end.astimezone(UTC)
    minutes = max(1, math.ceil((last - first).total_seconds() / PERIOD_S))
    return first, first + timedelta(seconds=minutes * PERIOD_S)


def _queries(cluster_id: str) -> list[dict[str, Any]]:
    return [
        {
            "Id": f"m{i}",
            "MetricStat": {
                "Metric": {"Namespace": NAMESPACE, "MetricName": m.name, "Dimensions": [{"Name": DIMENSION, "Value": cluster_id}]},
                "Period": PERIOD_S,
                "Stat": m.stat,
            },
            "ReturnData": True,
        }
        for i, m in enumerate(METRICS)
    ]


def read_cluster_metrics(client: Any, cluster_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    """The cluster's counters over the minutes holding ``start``..``end``, read with ``client`` (boto3 ``cloudwatch``).

    Returns run.json's ``cluster_metrics``: the window, each metric's value over it
    (None: no data point yet) and the minutes with data. Raises what botocore raises.
    """
    first, last = minute_window(start, end)
    values: dict[str, list[float]] = {m.name: [] for m in METRICS}
    partial: set[str] = set()
    token: str | None = None
    while True:
        request: dict[str, Any] = {
            "MetricDataQueries": _queries(cluster_id),
            "StartTime": first,
            "EndTime": last,
            "ScanBy": "TimestampAscending",
        }
        if token:
            request["NextToken"] = token
        answer = client.get_metric_data(**request)
        for result in answer.get("MetricDataResults", []):
            metric = METRICS[int(result["Id"][1:])]
            values[metric.name].extend(float(v) for v in result.get("Values", []))
            if result.get("StatusCode") not in (None, "Complete"):
                partial.add(metric.name)
        token = answer.get("NextToken")
        if not token:
            break
    minutes = round((last - first).total_seconds() / PERIOD_S)
    metrics: dict[str, Any] = {}
    for m in METRICS:
        points = values[m.name]
        if not points:
            value = None
        elif m.stat == "Sum":
            value = sum(points)
        else:
            value = sum(points) / len(points)
        metrics[m.name] = {"value": value, "unit": m.unit, "stat": m.stat, "minutes_with_data": len(points)}
    with_data = max(v["minutes_with_data"] for v in metrics.values())
    doc: dict[str, Any] = {
        "source": f"CloudWatch {NAMESPACE}, {DIMENSION}={cluster_id}",
        "window": {"start": first.isoformat(), "end": last.isoformat(), "period_s": PERIOD_S, "minutes": minutes},
        "measured": {"start": start.astimezone(UTC).isoformat(), "end": end.astimezone(UTC).isoformat()},
        "metrics": metrics,
    }
    if with_data == 0:
        doc["note"] = "no data yet: CloudWatch publishes DSQL's metrics a few minutes late"
    elif with_data < minutes or partial:
        doc["note"] = f"{with_data} of {minutes} minutes published when read: CloudWatch publishes DSQL's metrics a few minutes late"
    return doc


def cluster_metrics(
    cluster_id: str, region: str, profile: str | None, start: datetime, end: datetime, make_client: Callable[[], Any] | None = None
) -> dict[str, Any]:
    """:func:`read_cluster_metrics` with this run's credentials; a problem becomes one line in ``unavailable``."""
    try:
        import botocore.exceptions  # lazy: boto3 takes about 0.9 s to import, paid by DSQL commands only
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return {"unavailable": "boto3 is not installed"}
    try:
        client = make_client() if make_client is not None else _client(profile, region)
        return read_cluster_metrics(client, cluster_id, start, end)
    except botocore.exceptions.ClientError as e:
        err = e.response.get("Error", {})
        code = err.get("Code", "error")
        hint = " (the identity needs cloudwatch:GetMetricData)" if "AccessDenied" in code or code == "UnauthorizedOperation" else ""
        return {"unavailable": f"CloudWatch: {code}: {err.get('Message', '')}".rstrip(": ") + hint}
    except botocore.exceptions.BotoCoreError as e:
        return {"unavailable": f"CloudWatch: {first_line(e)}"}


def _client(profile: str | None, region: str) -> Any:
    import boto3  # lazy: boto3 takes about 0.9 s to import, paid by DSQL commands only

    return boto3.session.Session(profile_name=profile, region_name=region).client("cloudwatch")
