"""``loadgen db start|stop|status|url|prune``: the embedded PostgreSQL (loadgen.targets.embedded)."""

from __future__ import annotations

import argparse

from loadgen.cli.exits import EXIT_OK
from loadgen.targets.embedded import EmbeddedPostgres

__all__ = ["cmd_db"]

#: ``loadgen db status`` of a server that is not running (as ``pg_ctl status`` says it).
EXIT_NOT_RUNNING = 3


def cmd_db(args: argparse.Namespace) -> int:
    server = EmbeddedPostgres()
    if args.action == "start":
        status = server.ensure_running(min_connections=args.max_connections)
        print(f"running (pid {status.pid}, max_connections {status.max_connections}): {server.url}")
    elif args.action == "stop":
        print("stopped" if server.stop(force=args.force) else "not running")
    elif args.action == "prune":
        dropped = server.prune() if server.status().running else []
        print(f"dropped {len(dropped)} database(s) of runs no longer live" + (": " + ", ".join(dropped) if dropped else ""))
    elif args.action == "status":
        status = server.status()
        if status.running:
            print(f"running (pid {status.pid}, max_connections {status.max_connections}): {server.url}")
            for run in status.live_runs:
                print(f"  live run {run.run_id} (pid {run.pid}, {run.users} users, database {run.database})")
            left = [db for db in server.run_databases() if db not in {r.database for r in status.live_runs}]
            if left:
                print(f"  {len(left)} database(s) left by runs that ended without dropping them (--keep-db, or killed): loadgen db prune")
        else:
            print(f"not running (data in {server.home})")
            return EXIT_NOT_RUNNING
    elif args.action == "url":
        print(server.url)
    return EXIT_OK
