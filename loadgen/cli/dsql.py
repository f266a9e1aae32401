"""The command line's DSQL parts: ``run`` options, ``loadgen dsql create|delete``, ``--ephemeral``.

Kept apart from ``cli.py`` so the core CLI stays small; ``cli.py`` only calls in here.
Nothing here imports psycopg at module level (Locust must patch first).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadgen.errors import ConfigError
from loadgen.targets.spec import KINDS, TargetSpec

if TYPE_CHECKING:
    from loadgen.targets.base import Target  # lazy: DSQL's modules load for DSQL commands only

__all__ = [
    "add_run_options",
    "add_command",
    "cmd_dsql",
    "target_spec",
    "options_dialect",
    "run_ephemeral",
    "report_dialect_check",
]


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def add_run_options(run: argparse.ArgumentParser) -> None:
    g = run.add_argument_group("Aurora DSQL (--target dsql)")
    g.add_argument("--endpoint", help="cluster endpoint ID.dsql.REGION.on.aws (or a cluster id with --region)")
    g.add_argument("--region", help="AWS Region (default: from the endpoint)")
    g.add_argument("--db-user", help="database role: admin (default) or a role mapped to IAM with AWS IAM GRANT")
    g.add_argument("--profile", help="AWS profile for credentials (default: the usual boto3 chain)")
    g.add_argument("--token-expiry", type=_int, help="IAM token lifetime in seconds (default 900)")
    g.add_argument(
        "--sslmode",
        help="verify-full (default: the server's certificate checked against --sslrootcert) or require (encrypted, not verified)",
    )
    g.add_argument(
        "--sslrootcert",
        help="roots verify-full checks against: 'certifi' (default: certifi's bundle, which holds Amazon's roots), a CA bundle file, "
        "or 'system' (the roots of libpq's own OpenSSL, libpq 16+)",
    )
    g.add_argument("--connect-rate", type=_float, help="new connections per second (default 80; DSQL allows 100)")
    g.add_argument(
        "--max-connections",
        dest="dsql_max_connections",
        type=_int,
        help="the cluster's connection quota (default 10000, DSQL's default; it is adjustable)",
    )
    g.add_argument(
        "--ephemeral",
        action="store_true",
        help="create a cluster for this run and delete it afterwards, even on failure (needs --region or a default Region)",
    )
    run.add_argument(
        "--dialect",
        choices=["postgresql", "dsql"],
        help="dsql: follow DSQL's rules on any target and check every statement sent (default: the target's own)",
    )


def add_command(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("dsql", help="create or delete an Aurora DSQL cluster")
    actions = d.add_subparsers(dest="dsql_action", metavar="ACTION", parser_class=parser_class)
    actions.required = True
    c = actions.add_parser("create", help="create a cluster, wait until ACTIVE, print its endpoint")
    c.add_argument("--region", help="AWS Region (default: your profile's)")
    c.add_argument("--profile", help="AWS profile")
    c.add_argument("--tag", action="append", metavar="KEY=VALUE", help="a tag for the cluster (repeatable)")
    c.add_argument("--no-deletion-protection", action="store_true", help="create it without deletion protection")
    x = actions.add_parser("delete", help="delete a cluster (turning deletion protection off) and wait until it is gone")
    x.add_argument("cluster", metavar="ID", help="cluster identifier or endpoint")
    x.add_argument("--region", help="AWS Region (default: from the endpoint, or your profile's)")
    x.add_argument("--profile", help="AWS profile")


def cmd_dsql(args: argparse.Namespace) -> int:
    from loadgen.targets import dsql_cluster as lifecycle  # lazy: DSQL's modules load for DSQL commands only

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
        from loadgen.targets.dsql import parse_endpoint  # lazy: DSQL's modules load for DSQL commands only

        _, region = parse_endpoint(args.cluster)
    client = lifecycle.dsql_client(region, args.profile)
    print(f"deleting DSQL cluster {identifier} (waiting until it is gone)...", flush=True)
    status = lifecycle.delete_cluster(client, identifier)
    if status == lifecycle.PENDING_DELETE:
        print(f"{identifier}: pending_delete: a multi-Region cluster, gone once its peer clusters are deleted too")
    else:
        print(f"{identifier}: {status.lower()}")
    return 0


def target_spec(args: argparse.Namespace, sf: Any = None) -> TargetSpec:
    """The run's target as data: the command line's options over the scenario file's ``[target]``
    (``--target``'s default, embedded, gives way to a file that names its target)."""
    given = {
        "kind": args.target,
        "dsn": args.dsn,
        "schema": getattr(args, "schema", None),
        "endpoint": args.endpoint,
        "region": args.region,
        "db_user": args.db_user,
        "profile": args.profile,
        "token_expiry_s": args.token_expiry,
        "sslmode": args.sslmode,
        "sslrootcert": args.sslrootcert,
        "connect_rate": args.connect_rate,
        "max_connections": args.dsql_max_connections,
        "dialect": args.dialect,
    }
    from_file = dict(sf.target) if sf is not None else {}
    if args.target == "embedded" and not args.dsn and "kind" in from_file:
        del given["kind"]
    return TargetSpec.from_options({**from_file, **{k: v for k, v in given.items() if v is not None}})


def options_dialect(args: argparse.Namespace) -> str:
    """The dialect the command line's own ``--target``/``--dialect`` speak (a scenario file may change the target later)."""
    kind = KINDS.get(args.target)
    return args.dialect or (kind.dialect if kind is not None else None) or "postgresql"


#: Stands for the cluster ``--ephemeral`` will create while the run's options are checked.
_PLACEHOLDER_CLUSTER = "ephemeralclusterplaceholder"


def run_ephemeral(args: argparse.Namespace, run: Callable[[], int], check: Callable[[], object] | None = None) -> int:
    """``loadgen run --ephemeral``: a cluster for this run only, deleted afterwards whatever happens.

    ``check`` validates the whole run (TLS options, chaos, processes, every cell) against a
    stand-in endpoint in the cluster's Region first: a run refused must not cost a cluster.
    """
    from loadgen.targets import dsql_cluster as lifecycle  # lazy: DSQL's modules load for DSQL commands only

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


def report_dialect_check(target: Target, run_dir: Path) -> bool:
    """After a ``--dialect dsql`` run: check the audited traffic, write dialect-check.json, say it in
    one line; True when clean (or nothing was audited)."""
    audit = target.audit
    if audit is None:
        return True
    from loadgen.results import rundir  # lazy: pyarrow loads for commands that read or write runs only

    try:
        findings = audit.check()
    finally:
        audit.cleanup()
    rundir.write_dialect_check(run_dir, findings, audit.connections)
    violations = findings.to_dict()["violations"]
    print(
        f"dialect dsql: {findings.statements} statements in {findings.transactions} transactions over "
        f"{audit.connections} connections checked, {len(violations)} breaking DSQL's rules"
    )
    for v in violations[:10]:
        print(f"  {v['rule']}: {v['statement']}")
    return findings.ok
