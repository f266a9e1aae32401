"""Finishing a long run: peak memory and time of the real ``RunSession.finish`` over N streamed attempts.

    PYTHONPATH=. LOADGEN_HOME=/tmp/lg-finish-home python benchmarks/finish_memory.py [--attempts 1000000] [--rate 1400]
    PYTHONPATH=. python benchmarks/finish_memory.py --recover [--attempts 1000000]

A 10-minute soak holds about 843,000 attempts; running one takes 10 minutes and a
quiet machine. This makes the same end state in about a minute: a child process
prepares a real run on the embedded server (its own database, bank reset), writes
N synthetic but realistic attempts through the run's own AttemptStream, ``--rate``
rows per part as a run at that many attempts/s does (so segments hold one-second
row groups), puts every committed transfer in the ledger as the database would
have, and then calls ``RunSession.finish``: unknown commits settled against the
ledger, invariants checked, the summary, attempts.parquet and run.json written.

Printed (and written as JSON to ``--json``): the child's resident memory just
before finishing, its peak (``ru_maxrss``) after, and the wall time of the finish.
The child's peak before the finish is printed too, so a reader can see that the
generation did not set the peak. ``--report`` also draws report.html in the same
process afterwards, as ``loadgen run`` does, and prints the peak after it.

``--recover`` measures ``loadgen report``'s first step on a run that was killed instead:
one child writes the parts (no database) and exits, as a killed run leaves them;
a fresh child then runs ``loadgen.results.stream.recover`` on them (summary of what
reached disk, run.json marked cut off, attempts.parquet written from its parts).

Mix (per transfer): each attempt conflicts (40001) with probability 0.3 and is
retried, up to 5 attempts; the last one commits, or 2 % end insufficient_funds,
0.2 % lose their connection inside COMMIT (commit unknown; half of those reached
the ledger, so they settle as ambiguous_committed). 1,000 accounts, 16 users.
"""

from __future__ import annotations

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split

import argparse
import cProfile
import gc
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from loadgen.db.transfer import new_txn_id
from loadgen.engine.session import RunSession
from loadgen.engine.users import TransferUser
from loadgen.model.scenario import Scenario
from loadgen.results.recorder import AttemptRecorder
from loadgen.results.stream import AttemptStream, recover
from loadgen.targets.base import EmbeddedTarget
from loadgen.targets.embedded import EmbeddedPostgres

ACCOUNTS = 1000
USERS = 16


def vm_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def fill(rec: AttemptRecorder, rows: int, clock: list[float], rng: random.Random, ledger: list[tuple[str, int, int]]) -> None:
    """About ``rows`` attempts (whole transfers) into ``rec``; the transfers that reached the ledger into ``ledger``."""
    step = 1.0 / max(rows, 1)
    n = 0
    while n < rows:
        txn, payer, payee = new_txn_id(), rng.randint(1, ACCOUNTS), rng.randint(1, ACCOUNTS)
        user = rng.randrange(USERS)
        attempt = 1
        while True:
            t = clock[0]
            clock[0] += step
            latency = rng.lognormvariate(0.7, 0.5)
            n += 1
            if attempt < 5 and rng.random() < 0.3:
                rec.add((txn, attempt, t, latency, "conflict", "40001", None, payer, payee, 1, 0.0, False, 0.0, "commit"), user)
                attempt += 1
                continue
            r = rng.random()
            if r < 0.02:
                rec.add((txn, attempt, t, latency, "insufficient_funds", "23514", None, payer, payee, 1, 0.0, False, 0.0, "debit"), user)
            elif r < 0.022:
                rec.add((txn, attempt, t, latency, "connection_error", "08006", None, payer, payee, 1, 0.0, True, 0.0, "commit"), user)
                if r < 0.021:
                    ledger.append((txn, payer, payee))  # the COMMIT landed; its answer was lost
            else:
                rec.add((txn, attempt, t, latency, "committed", None, None, payer, payee, 1, 0.0, False, 0.0, None), user)
                ledger.append((txn, payer, payee))
            break


def child(args: argparse.Namespace) -> dict[str, object]:
    target = EmbeddedTarget(EmbeddedPostgres(Path(os.environ["LOADGEN_HOME"])))
    scenario = Scenario(name="finish-memory", accounts=ACCOUNTS, users=USERS, duration_s=args.attempts / args.rate)
    session = RunSession(scenario, target, command_line=["benchmarks/finish_memory.py"])
    session.prepare(args.out)
    assert session.run_dir is not None
    env = session.environment(TransferUser)
    session.start()
    recorder = AttemptRecorder(session.run_id)
    session.stream(lambda: (recorder,), env)
    assert session.streamed is not None
    rng = random.Random(12)
    clock = [time.time() - args.attempts / args.rate]
    t0 = time.perf_counter()
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        while session.streamed.rows < args.attempts:
            ledger: list[tuple[str, int, int]] = []
            fill(recorder, min(args.rate, args.attempts - session.streamed.rows), clock, rng, ledger)
            session.streamed.stream.drain(recorder)  # one part, as the flusher writes each second
            with conn.cursor().copy("COPY transfers (id, payer, payee, amount) FROM STDIN") as copy:
                for txn, payer, payee in ledger:
                    copy.write_row((txn, payer, payee, 1))
    generate_s = time.perf_counter() - t0
    gc.collect()
    before, peak_before = vm_rss_mb(), peak_mb()
    profiler = cProfile.Profile() if args.profile else None
    t0, c0 = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    result = session.finish(recorder, env, {})
    finish_s, finish_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    out: dict[str, object] = {
        "attempts": result.summary["attempts"],
        "commits": result.summary["commits"],
        "invariants_hold": result.invariants_hold,
        "generate_s": round(generate_s, 1),
        "rss_before_finish_mb": round(before, 1),
        "peak_before_finish_mb": round(peak_before, 1),
        "peak_after_finish_mb": round(peak_mb(), 1),
        "finish_s": round(finish_s, 1),
        # CPU seconds of the whole process (every thread: the Parquet writer's, DuckDB's): what a busy machine does not inflate.
        "finish_cpu_s": round(finish_cpu_s, 1),
        "attempts_parquet_mb": round((session.run_dir / "attempts.parquet").stat().st_size / 2**20, 1),
    }
    if args.report:
        t0, c0 = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler = cProfile.Profile()
            profiler.enable()
        session.closing_report()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{args.profile}.report")  # the report's own statistics, beside the finish's
        out["report_s"] = round(time.perf_counter() - t0, 1)
        out["report_cpu_s"] = round(time.process_time() - c0, 1)
        out["peak_after_report_mb"] = round(peak_mb(), 1)
    return out


def write_killed(args: argparse.Namespace) -> dict[str, object]:
    """Parts and a run.json as a run killed after N attempts leaves them."""
    run_dir = args.out / "run-killed"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_dir.name, "status": "running", "completed": False}))
    stream = AttemptStream(run_dir)
    recorder = AttemptRecorder(run_dir.name)
    rng = random.Random(12)
    clock = [time.time() - args.attempts / args.rate]
    while stream.rows < args.attempts:
        fill(recorder, min(args.rate, args.attempts - stream.rows), clock, rng, [])
        stream.drain(recorder)
    stream.close()
    return {"attempts": stream.rows}


def recover_killed(args: argparse.Namespace) -> dict[str, object]:
    run_dir = args.out / "run-killed"
    gc.collect()
    before = vm_rss_mb()
    t0 = time.perf_counter()
    cut = recover(run_dir)
    assert cut is not None
    return {
        "attempts": cut.attempts,
        "rss_before_recover_mb": round(before, 1),
        "peak_after_recover_mb": round(peak_mb(), 1),
        "recover_s": round(time.perf_counter() - t0, 1),
        "attempts_parquet_mb": round((run_dir / "attempts.parquet").stat().st_size / 2**20, 1),
    }


def in_child(args: list[str]) -> dict[str, object]:
    # A fresh process each time: ru_maxrss is the peak of this step alone, not of an earlier one.
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    figures: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--attempts", type=int, default=1_000_000)
    ap.add_argument("--rate", type=int, default=1400, help="attempts per part (per second of the run it imitates)")
    ap.add_argument("--out", type=Path, default=None, help="where the run directory goes (default: a temporary directory)")
    ap.add_argument("--report", action="store_true", help="also draw report.html in the same process, as loadgen run does")
    ap.add_argument("--recover", action="store_true", help="measure recover() of a killed run's parts instead of finish()")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write the finish's cProfile statistics here, the report's to PATH.report (main thread only)",
    )
    ap.add_argument("--child", choices=["finish", "write-killed", "recover"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        step = {"finish": child, "write-killed": write_killed, "recover": recover_killed}[args.child]
        print(json.dumps(step(args)))
        return 0
    if not args.recover and "LOADGEN_HOME" not in os.environ:
        print("finish_memory: set LOADGEN_HOME (the embedded server's home)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="lg-finish-") as tmp:
        out = args.out or Path(tmp)
        common = ["--attempts", str(args.attempts), "--rate", str(args.rate), "--out", str(out)]
        try:
            if args.recover:
                in_child(["--child", "write-killed", *common])
                figures = in_child(["--child", "recover", *common])
            else:
                extra = [*(["--report"] if args.report else []), *(["--profile", str(args.profile)] if args.profile else [])]
                figures = in_child(["--child", "finish", *common, *extra])
        except RuntimeError as e:
            print(e, file=sys.stderr)
            return 1
    figures["load1"] = round(os.getloadavg()[0], 1)
    for k, v in figures.items():
        print(f"{k:>24} {v}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
