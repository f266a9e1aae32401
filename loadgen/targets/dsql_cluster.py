"""Aurora DSQL cluster lifecycle: create and wait until ACTIVE, delete, and a cluster for one run.

A convenience over boto3's ``dsql`` client (``create_cluster``, ``get_cluster``,
``update_cluster``, ``delete_cluster``). Every AWS failure becomes one ``TargetError``
line that says what is left behind and how to remove it.

Waits poll ``get_cluster`` rather than use botocore's ``cluster_active`` waiter: a
cluster at rest is ``IDLE`` or ``INACTIVE`` (it wakes only on a connection), which
that waiter never accepts, and ``FAILED`` should end a wait at once, not after it.
"""

from __future__ import annotations

import time
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
#: A cluster in one of these can be updated or deleted: ACTIVE, or at rest (scaled down, woken by a connection).
SETTLED = frozenset({"ACTIVE", "IDLE", "INACTIVE"})
#: A multi-Region cluster created without its peer yet: it stays so until peered, and may be deleted as it is.
PENDING_SETUP = "PENDING_SETUP"
#: A multi-Region cluster whose deletion waits for its peers to be deleted too: nothing to do here but say so.
PENDING_DELETE = "PENDING_DELETE"
#: A deletion can start from these (a FAILED cluster can only be deleted).
DELETABLE = SETTLED | {"FAILED", PENDING_SETUP}
GONE = frozenset({"DELETED"})
#: Tries of a call that meets a ConflictException (the cluster is busy with another change).
CONFLICT_TRIES = 10


@dataclass(frozen=True)
class Cluster:
    identifier: str
    arn: str
    endpoint: str
    region: str
    status: str


def dsql_client(region: str | None = None, profile: str | None = None) -> Any:
    """A ``dsql`` client from the usual credential chain; the Region must be known."""
    import boto3  # lazy: boto3 takes about 0.9 s to import, paid by DSQL commands only
    import botocore.exceptions  # lazy: boto3 takes about 0.9 s to import, paid by DSQL commands only

    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except botocore.exceptions.BotoCoreError as e:
        raise ConfigError(f"AWS: {e}") from None
    if not session.region_name:
        raise ConfigError("no AWS Region: give --region (or set AWS_DEFAULT_REGION, or a region in your profile)")
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
    import botocore.exceptions  # lazy: boto3 takes about 0.9 s to import, paid by DSQL commands only

    if isinstance(e, botocore.exceptions.ClientError):
        err = e.response.get("Error", {})
        return TargetError(f"{what}: {err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": "))
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return TargetError(f"{what}: {text}")


def _status(client: Any, identifier: str) -> tuple[str, bool]:
    """(status, deletion protection on); ``DELETED`` when AWS no longer knows the cluster."""
    import botocore.exceptions  # lazy: boto3 takes about 0.9 s to import, paid by DSQL commands only

    try:
        c = client.get_cluster(identifier=identifier)
    except botocore.exceptions.ClientError as e:
        if e.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return "DELETED", False
        raise
    return str(c["status"]), bool(c.get("deletionProtectionEnabled", False))


def _wait_for(
    client: Any, identifier: str, wanted: frozenset[str], what: str, delay_s: float, max_wait_s: float, sleep: Callable[[float], None]
) -> str:
    """Poll until the cluster's status is in ``wanted``; FAILED (or gone, if not wanted) ends the wait at once."""
    deadline = time.monotonic() + max_wait_s
    while True:
        status, _ = _status(client, identifier)
        if status in wanted:
            return status
        if status == "FAILED" or (status in GONE and not wanted & GONE):
            raise TargetError(f"cluster {identifier} is {status} while waiting until it is {what}")
        if time.monotonic() >= deadline:
            raise TargetError(f"cluster {identifier} is still {status} after {max_wait_s:g} s waiting until it is {what}")
        sleep(delay_s)


def _retry_conflict(call: Callable[[], T], delay_s: float, sleep: Callable[[float], None]) -> T:
    """``call()``, tried again while AWS answers ConflictException (another change is under way)."""
    import botocore.exceptions  # lazy: boto3 takes about 0.9 s to import, paid by DSQL commands only

    for attempt in range(1, CONFLICT_TRIES + 1):
        try:
            return call()
        except botocore.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") != "ConflictException" or attempt == CONFLICT_TRIES:
                raise
            sleep(delay_s * min(attempt, 5))
    raise AssertionError("unreachable")


def create_cluster(
    client: Any,
    tags: dict[str, str] | None = None,
    *,
    deletion_protection: bool = True,
    delay_s: float = 2.0,
    max_wait_s: float = 600.0,
    on_created: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Cluster:
    """Create a single-Region cluster and wait until it is ACTIVE.

    ``on_created`` hears the identifier as soon as AWS has one, before the wait,
    so a caller can clean up a cluster whose wait failed.
    """
    import botocore.exceptions  # lazy: boto3 takes about 0.9 s to import, paid by DSQL commands only

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
        _wait_for(client, identifier, frozenset({"ACTIVE"}), "ACTIVE", delay_s, max_wait_s, sleep)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, TargetError) as e:
        raise _fail(
            f"cluster {identifier} was created but did not become ACTIVE (delete it with: loadgen dsql delete {identifier}"
            f" --region {region})",
            e,
        ) from None
    endpoint = created.get("endpoint") or f"{identifier}.dsql.{region}.on.aws"
    return Cluster(identifier, created.get("arn", ""), endpoint, region, "ACTIVE")


def delete_cluster(
    client: Any,
    identifier: str,
    *,
    delay_s: float = 2.0,
    max_wait_s: float = 600.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Delete a cluster and wait until it is gone; its last status (``DELETED``).

    Reads the cluster first: a cluster at rest (IDLE, INACTIVE) or a multi-Region one
    waiting for its peer (PENDING_SETUP) is deleted as it is; one busy changing is
    waited for. A multi-Region cluster in PENDING_DELETE is already being deleted and
    waits for its peers: its status is returned at once (the caller says what is left
    to do). Deletion protection is turned off only when on, and turned back on if the
    deletion then fails, so a failure leaves the cluster as it was found.
    """
    import botocore.exceptions  # lazy: boto3 takes about 0.9 s to import, paid by DSQL commands only

    errors = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
    what = f"cannot delete DSQL cluster {identifier}"
    try:
        status, protected = _status(client, identifier)
        if status in GONE or status == PENDING_DELETE:
            return status
        if status != "DELETING":
            if status not in DELETABLE:
                status = _wait_for(
                    client,
                    identifier,
                    DELETABLE | {"DELETING", PENDING_DELETE} | GONE,
                    "ACTIVE, IDLE or INACTIVE",
                    delay_s,
                    max_wait_s,
                    sleep,
                )
            if status in GONE or status == PENDING_DELETE:
                return status
    except errors as e:
        raise _fail(what, e) from None
    if status != "DELETING":
        try:
            if protected:
                _retry_conflict(lambda: client.update_cluster(identifier=identifier, deletionProtectionEnabled=False), delay_s, sleep)
                # The update passes through UPDATING; DeleteCluster wants a settled cluster.
                _wait_for(client, identifier, DELETABLE - {"FAILED"}, "ACTIVE, IDLE or INACTIVE", delay_s, max_wait_s, sleep)
            _retry_conflict(lambda: client.delete_cluster(identifier=identifier, clientToken=str(uuid.uuid4())), delay_s, sleep)
        except (*errors, TargetError) as e:
            note = _restore_protection(client, identifier, delay_s, sleep) if protected else ""
            raise _fail(what + note, e) from None
    try:
        # A multi-Region cluster stops at PENDING_DELETE until its peers are deleted too.
        return _wait_for(client, identifier, GONE | {PENDING_DELETE}, "deleted", delay_s, max_wait_s, sleep)
    except errors as e:
        raise _fail(f"cluster {identifier} is deleting, but", e) from None


def _restore_protection(client: Any, identifier: str, delay_s: float, sleep: Callable[[float], None]) -> str:
    """Turn deletion protection back on after a failed deletion (retried while the cluster is
    busy with the change just made: ConflictException); what to tell the user."""
    try:
        _retry_conflict(lambda: client.update_cluster(identifier=identifier, deletionProtectionEnabled=True), delay_s, sleep)
    except Exception:  # noqa: BLE001 - reported in the message
        return " (deletion protection is now OFF: turn it back on in the console)"
    return " (deletion protection turned back on)"


@contextmanager
def ephemeral_cluster(
    client: Any,
    tags: dict[str, str] | None = None,
    *,
    delay_s: float = 2.0,
    max_wait_s: float = 600.0,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
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
            sleep=sleep,
        )
        log(f"loadgen dsql: cluster {cluster.identifier} ACTIVE at {cluster.endpoint} (ephemeral)")
        yield cluster
    finally:
        for identifier in created:
            try:
                status = delete_cluster(client, identifier, delay_s=delay_s, max_wait_s=max_wait_s, sleep=sleep)
                log(f"loadgen dsql: cluster {identifier} {status.lower().replace('_', ' ')}")
            except TargetError as e:
                log(f"loadgen dsql: {e}; delete it by hand: loadgen dsql delete {identifier}")
