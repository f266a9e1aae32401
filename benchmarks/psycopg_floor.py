"""The floor under loadgen's CPU per attempt: the bare transfer over psycopg under gevent.

    PYTHONPATH=. LOADGEN_HOME=/tmp/lg-bench python benchmarks/psycopg_floor.py [--clients 16] [--duration 5] [--rounds 2]

No Locust, no pool, no retry loop, no recording: ``--clients`` greenlets, each on
its own connection, run ``loadgen.db.transfer.transfer_once`` back to back for
``--duration`` seconds, once with psycopg's default connection (under gevent it
waits with ``waiting.wait_poll`` over gevent's patched ``select.poll``) and once
with ``loadgen.db.gwait.GeventConnection``, alternating. Prints transfers/s and the
process's CPU time per transfer. Whatever loadgen adds on top is its own cost;
what is here is what psycopg and gevent cost for five round trips.
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
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gevent  # noqa: E402
import psycopg  # noqa: E402
from psycopg import IsolationLevel  # noqa: E402

from loadgen.db.gwait import GeventConnection  # noqa: E402
from loadgen.db.schema import reset  # noqa: E402
from loadgen.db.transfer import TransferRequest, transfer_once  # noqa: E402
from loadgen.targets.embedded import EmbeddedPostgres  # noqa: E402


def measure(cls: type[psycopg.Connection[Any]], conninfo: str, clients: int, accounts: int, duration: float) -> dict[str, Any]:
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
                transfer_once(conn, TransferRequest(str(uuid.uuid4()), payer, payee, 1))
                done[0] += 1
            except psycopg.Error:
                conn.rollback()
                done[1] += 1

    cpu0, t0 = time.process_time(), time.monotonic()
    gevent.joinall([gevent.spawn(client, c, i) for i, c in enumerate(conns)])
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    for c in conns:
        c.close()
    return {
        "connection": cls.__name__,
        "transfers_per_s": round(done[0] / wall, 1),
        "failed": done[1],
        "cpu_per_transfer_us": round(cpu / max(done[0] + done[1], 1) * 1e6, 1),
        "cpu_utilization": round(cpu / wall, 3),
        "loadavg_1m": os.getloadavg()[0],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--accounts", type=int, default=100_000)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    home = Path(os.environ.get("LOADGEN_HOME") or tempfile.mkdtemp(prefix="lg-bench-", dir="/tmp"))
    server = EmbeddedPostgres(home)
    server.ensure_running(min_connections=args.clients + 10)
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        reset(conn, args.accounts, 100)
    for _ in range(args.rounds):
        for cls in (psycopg.Connection, GeventConnection):
            print(json.dumps(measure(cls, server.conninfo, args.clients, args.accounts, args.duration)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
