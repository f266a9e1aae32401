"""Aurora DSQL cluster lifecycle: create and wait until ACTIVE, delete, and a cluster for one run.

A convenience over boto3's ``dsql`` client (``create_cluster``, the ``cluster_active``
waiter, ``update_cluster``, ``delete_cluster``). Every AWS failure becomes one
``TargetError`` line that says what is left behind and how to remove it.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from loadgen.errors import ConfigError, TargetError

__all__ = ["Cluster", "dsql_client", "create_cluster", "delete_cluster", "ephemeral_cluster", "parse_tags", "cluster_id_of"]

T = TypeVar("T")

#: Tags every cluster loadgen creates carries, so a forgotten one is easy to find.
LOADGEN_TAGS = {"created-by": "loadgen"}


@dataclass(frozen=True)
class Cluster:
    identifier: str
    arn: str
    endpoint: str
    region: str
    status: str


def dsql_client(region: str | None = None, profile: str | None = None) -> Any:
    """A ``dsql`` client from the usual credential chain; the Region must be known."""
    import boto3
    import botocore.exceptions

    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except botocore.exceptions.BotoCoreError as e:
        raise ConfigError(f"AWS: {e}") from None
    if not session.region_name:
        raise ConfigError("no AWS Region: give --region (or set AWS_REGION, or a region in your profile)")
    return session.client("dsql")


def parse_tags(pairs: list[str] | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--tag must be KEY=VALUE, got {pair!r}")
        tags[key.strip()] = value.strip()
    return tags


def cluster_id_of(text: str) -> str:
    """The cluster identifier from an identifier or an endpoint ``ID.dsql.REGION.on.aws``."""
    ident = text.strip().lower().split(".", 1)[0]
    if not ident.isalnum():
        raise ConfigError(f"not a DSQL cluster identifier or endpoint: {text!r}")
    return ident


def _fail(what: str, e: Exception) -> TargetError:
    import botocore.exceptions

    if isinstance(e, botocore.exceptions.ClientError):
        err = e.response.get("Error", {})
        return TargetError(f"{what}: {err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": "))
    if isinstance(e, botocore.exceptions.WaiterError):
        return TargetError(f"{what}: {e.last_response.get('status', 'no answer') if isinstance(e.last_response, dict) else e}")
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return TargetError(f"{what}: {text}")


def _wait_active(client: Any, identifier: str, delay_s: float, max_wait_s: float) -> None:
    delay = max(0, int(delay_s))
    attempts = max(1, math.ceil(max_wait_s / max(1, delay)))
    client.get_waiter("cluster_active").wait(identifier=identifier, WaiterConfig={"Delay": delay, "MaxAttempts": attempts})


def create_cluster(
    client: Any,
    tags: dict[str, str] | None = None,
    *,
    deletion_protection: bool = True,
    delay_s: float = 2.0,
    max_wait_s: float = 600.0,
    on_created: Callable[[str], None] | None = None,
) -> Cluster:
    """Create a single-Region cluster and wait until it is ACTIVE.

    ``on_created`` hears the identifier as soon as AWS has one, before the wait,
    so a caller can clean up a cluster whose wait failed.
    """
    import botocore.exceptions

    region = client.meta.region_name
    try:
        created = client.create_cluster(
            deletionProtectionEnabled=deletion_protection,
            tags={**LOADGEN_TAGS, **(tags or {})},
            clientToken=str(uuid.uuid4()),
        )
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        raise _fail("cannot create a DSQL cluster", e) from None
    identifier = created["identifier"]
    if on_created is not None:
        on_created(identifier)
    try:
        _wait_active(client, identifier, delay_s, max_wait_s)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        raise _fail(
            f"cluster {identifier} was created but did not become ACTIVE (delete it with: loadgen dsql delete {identifier}"
            f" --region {region})",
            e,
        ) from None
    endpoint = created.get("endpoint") or f"{identifier}.dsql.{region}.on.aws"
    return Cluster(identifier, created.get("arn", ""), endpoint, region, "ACTIVE")


def delete_cluster(client: Any, identifier: str, *, delay_s: float = 2.0, max_wait_s: float = 300.0) -> str:
    """Turn deletion protection off, wait until the cluster is ACTIVE again, delete it; the new status."""
    import botocore.exceptions

    try:
        client.update_cluster(identifier=identifier, deletionProtectionEnabled=False)
        # The update may pass through UPDATING; DeleteCluster wants a settled cluster.
        _wait_active(client, identifier, delay_s, max_wait_s)
        deleted = client.delete_cluster(identifier=identifier, clientToken=str(uuid.uuid4()))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        raise _fail(f"cannot delete DSQL cluster {identifier}", e) from None
    return str(deleted.get("status", "DELETING"))


@contextmanager
def ephemeral_cluster(
    client: Any,
    tags: dict[str, str] | None = None,
    *,
    delay_s: float = 2.0,
    max_wait_s: float = 600.0,
    log: Callable[[str], None] = print,
) -> Iterator[Cluster]:
    """A cluster for the ``with`` block, deleted afterwards whatever happens inside (or while waiting)."""
    created: list[str] = []
    try:
        cluster = create_cluster(
            client,
            {"loadgen-ephemeral": "true", **(tags or {})},
            deletion_protection=False,
            delay_s=delay_s,
            max_wait_s=max_wait_s,
            on_created=created.append,
        )
        log(f"loadgen dsql: cluster {cluster.identifier} ACTIVE at {cluster.endpoint} (ephemeral)")
        yield cluster
    finally:
        for identifier in created:
            try:
                status = delete_cluster(client, identifier, delay_s=delay_s, max_wait_s=max_wait_s)
                log(f"loadgen dsql: cluster {identifier} {status.lower()}")
            except TargetError as e:
                log(f"loadgen dsql: {e}; delete it by hand: loadgen dsql delete {identifier}")
