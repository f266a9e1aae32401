"""What the bank's reset costs on DSQL's path (no TRUNCATE) after a run left a ledger of N rows.

    PYTHONPATH=. python benchmarks/reset_cost.py --ledger 0 200000 [--accounts 1000] [--baseline DIR]

For each ledger size: a database of its own on the embedded PostgreSQL, the bank reset,
N ledger rows written as a run would leave them, then the reset timed (wall seconds)
with its set-up transactions counted from the server (``xact_commit`` of the database
in ``pg_stat_database``, before and after). ``--baseline DIR`` (another checkout, e.g.
``git archive main | tar -x -C DIR``) times that checkout's reset on the same data,
alternating with this one's, in the same minutes. Each measurement runs in a process of
its own that imports the checkout it measures. Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ONE = r"""
import json, sys, time, psycopg
from loadgen.db.schema import reset
conninfo, accounts = sys.argv[1], int(sys.argv[2])
with psycopg.connect(conninfo, autocommit=True) as conn:
    dbname = conn.info.dbname
    def commits():
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (dbname,)).fetchone()[0]
    with psycopg.connect(conninfo, autocommit=True) as setup:
        before = commits()
        t0 = time.perf_counter()
        reset(setup, accounts, 100, truncate=False)
        wall = time.perf_counter() - t0
    time.sleep(0.6)  # the statistics collector's flush
    after = commits()
print(json.dumps({"wall_s": round(wall, 3), "transactions": after - before}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ledger", type=int, nargs="+", default=[0, 200_000])
    ap.add_argument("--accounts", type=int, default=1000)
    ap.add_argument("--baseline", type=Path)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("LOADGEN_HOME", tempfile.mkdtemp(prefix="lg-bench-", dir="/tmp"))
    import psycopg

    from loadgen.targets.embedded import EmbeddedPostgres

    server = EmbeddedPostgres()
    server.ensure_running(min_connections=20)
    checkouts = [("this", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    for ledger in args.ledger:
        for _ in range(args.repeat):
            for name, root in checkouts:
                db = f"lg_reset_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(server.conninfo, autocommit=True) as admin:
                    admin.execute(f"CREATE DATABASE {db}".encode())
                info = server.conninfo_for(db)
                try:
                    with psycopg.connect(info, autocommit=True) as c:
                        c.execute("CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL)")
                        c.execute(
                            "CREATE TABLE transfers (id uuid PRIMARY KEY, payer bigint NOT NULL, payee bigint NOT NULL,"
                            " amount bigint NOT NULL, committed_at timestamptz NOT NULL DEFAULT now())"
                        )
                        c.execute("INSERT INTO accounts SELECT g, 100 FROM generate_series(1, %s) g", (args.accounts,))
                        c.execute(
                            "INSERT INTO transfers (id, payer, payee, amount) SELECT gen_random_uuid(), 1, 2, 1 FROM generate_series(1, %s)",
                            (ledger,),
                        )
                        c.execute("VACUUM ANALYZE transfers")
                    load = os.getloadavg()[0]
                    out = subprocess.run(
                        [sys.executable, "-c", ONE, info, str(args.accounts)],
                        capture_output=True,
                        text=True,
                        env={**os.environ, "PYTHONPATH": str(root)},
                        cwd=root,  # python -c puts the current directory first on sys.path
                        check=True,
                    )
                    result = json.loads(out.stdout)
                    print(
                        json.dumps({"checkout": name, "ledger": ledger, "accounts": args.accounts, **result, "load_1m": load}), flush=True
                    )
                finally:
                    with psycopg.connect(server.conninfo, autocommit=True) as admin:
                        admin.execute(f"DROP DATABASE {db} WITH (FORCE)".encode())
                time.sleep(0.2)


if __name__ == "__main__":
    main()
