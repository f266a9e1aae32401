"""The floor under loadgen's CPU per attempt: the bare transfer over psycopg under gevent.

    PYTHONPATH=. LOADGEN_HOME=/tmp/lg-bench python benchmarks/psycopg_floor.py [--clients 16] [--duration 5] [--rounds 2]
    PYTHONPATH=. python benchmarks/psycopg_floor.py --dsn "host=127.0.0.1 port=5432 user=postgres dbname=postgres"

No Locust, no retry loop, no recording: ``--clients`` greenlets, each on its own
connection, run the talk's transfer back to back for ``--duration`` seconds, in
three ways, alternating: ``default`` (``transfer_once`` over psycopg's default
connection, which under gevent waits with ``waiting.wait_poll`` over gevent's
patched ``select.poll``), ``gevent`` (``transfer_once`` over
``loadgen.db.gevent_connection.GeventConnection``) and ``prepared`` (``loadgen.db.prepared``,
what loadgen runs: prepared statements straight through libpq). Prints
transfers/s and the process's CPU time per transfer, user and system apart.
Whatever loadgen adds on top is its own cost; what is here is the five round trips.
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gevent  # noqa: E402
import psycopg  # noqa: E402
from psycopg import IsolationLevel  # noqa: E402

from loadgen.db.gevent_connection import GeventConnection  # noqa: E402
from loadgen.db.prepared import transfer_prepared  # noqa: E402
from loadgen.db.schema import reset  # noqa: E402
from loadgen.db.transfer import TransferRequest, new_txn_id, transfer_once  # noqa: E402
from loadgen.targets.embedded import EmbeddedPostgres  # noqa: E402

VARIANTS = {
    "default": (psycopg.Connection, transfer_once),
    "gevent": (GeventConnection, transfer_once),
    "prepared": (GeventConnection, transfer_prepared),
}


def measure(variant: str, conninfo: str, clients: int, accounts: int, duration: float) -> dict[str, Any]:
    cls, transfer = VARIANTS[variant]
    conns = [cls.connect(conninfo) for _ in range(clients)]
    for c in conns:
        c.isolation_level = IsolationLevel.REPEATABLE_READ
    done = [0, 0]

    def client(conn: psycopg.Connection[Any], seed: int) -> None:
        rng = random.Random(seed)
        end = time.monotonic() + duration
        while time.monotonic() < end:
            payer = rng.randint(1, accounts)
            payee = rng.randint(1, accounts - 1)
            payee += payee >= payer
            try:
                transfer(conn, TransferRequest(new_txn_id(), payer, payee, 1))
                done[0] += 1
            except psycopg.Error:
                conn.rollback()
                done[1] += 1

    times0, t0 = os.times(), time.monotonic()
    gevent.joinall([gevent.spawn(client, c, i) for i, c in enumerate(conns)])
    times1, wall = os.times(), time.monotonic() - t0
    user, system = times1.user - times0.user, times1.system - times0.system
    cpu = user + system
    n = max(done[0] + done[1], 1)
    for c in conns:
        c.close()
    return {
        "variant": variant,
        "transfers_per_s": round(done[0] / wall, 1),
        "failed": done[1],
        "cpu_per_transfer_us": round(cpu / n * 1e6, 1),
        "user_us": round(user / n * 1e6, 1),
        "system_us": round(system / n * 1e6, 1),
        "cpu_utilization": round(cpu / wall, 3),
        "loadavg_1m": os.getloadavg()[0],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--accounts", type=int, default=100_000)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--dsn", help="a PostgreSQL to use instead of the embedded one (e.g. over TCP loopback)")
    p.add_argument("--variants", default="default,gevent,prepared", help="comma-separated, from: " + ", ".join(VARIANTS))
    args = p.parse_args()
    if args.dsn:
        conninfo = args.dsn
    else:
        home = Path(os.environ.get("LOADGEN_HOME") or tempfile.mkdtemp(prefix="lg-bench-", dir="/tmp"))
        server = EmbeddedPostgres(home)
        server.ensure_running(min_connections=args.clients + 10)
        conninfo = server.conninfo
    with psycopg.connect(conninfo, autocommit=True) as conn:
        reset(conn, args.accounts, 100)
    for _ in range(args.rounds):
        for variant in args.variants.split(","):
            print(json.dumps(measure(variant, conninfo, args.clients, args.accounts, args.duration)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
