"""``loadgen dsql create|delete`` and ``loadgen run --ephemeral``: an Aurora DSQL cluster's life.

Cheap to import: boto3 loads when a cluster is made or deleted (loadgen.targets.dsql_cluster).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from loadgen.errors import ConfigError
from loadgen.targets import dsql_cluster as lifecycle
from loadgen.targets.dsql import parse_endpoint

__all__ = ["cmd_dsql", "run_ephemeral"]


def cmd_dsql(args: argparse.Namespace) -> int:
    if args.dsql_action == "create":
        client = lifecycle.dsql_client(args.region, args.profile)
        tags = lifecycle.parse_tags(args.tag)
        print(f"creating a DSQL cluster in {client.meta.region_name} (waiting until ACTIVE)...", flush=True)
        cluster = lifecycle.create_cluster(client, tags, deletion_protection=not args.no_deletion_protection)
        print(f"ACTIVE: {cluster.identifier}")
        print(cluster.endpoint)
        return 0
    identifier = lifecycle.cluster_id_of(args.cluster)
    region = args.region
    if region is None and "." in args.cluster:
        _, region = parse_endpoint(args.cluster)
    client = lifecycle.dsql_client(region, args.profile)
    print(f"deleting DSQL cluster {identifier} (waiting until it is gone)...", flush=True)
    status = lifecycle.delete_cluster(client, identifier)
    if status == lifecycle.PENDING_DELETE:
        print(f"{identifier}: pending_delete: a multi-Region cluster, gone once its peer clusters are deleted too")
    else:
        print(f"{identifier}: {status.lower()}")
    return 0


#: Stands for the cluster ``--ephemeral`` will create while the run's options are checked.
_PLACEHOLDER_CLUSTER = "ephemeralclusterplaceholder"


def run_ephemeral(args: argparse.Namespace, run: Callable[[], int], check: Callable[[], object] | None = None) -> int:
    """``loadgen run --ephemeral``: a cluster for this run only, deleted afterwards whatever happens.

    ``check`` validates the whole run (TLS options, chaos, processes, every cell) against a
    stand-in endpoint in the cluster's Region first: a run refused must not cost a cluster.
    """
    if args.target != "dsql":
        raise ConfigError("--ephemeral creates a DSQL cluster: use it with --target dsql")
    if args.endpoint:
        raise ConfigError("--ephemeral creates its own cluster: leave out --endpoint")
    client = lifecycle.dsql_client(args.region, args.profile)
    if check is not None:
        region = args.region
        args.endpoint = f"{_PLACEHOLDER_CLUSTER}.dsql.{client.meta.region_name}.on.aws"
        try:
            check()
        finally:
            args.endpoint, args.region = None, region
    print(f"loadgen dsql: creating an ephemeral cluster in {client.meta.region_name}...", flush=True)
    with lifecycle.ephemeral_cluster(client, log=lambda line: print(line, flush=True)) as cluster:
        args.endpoint = cluster.endpoint
        args.region = cluster.region
        return run()
