"""What the load generator itself costs: CPU per attempt, a saturated core, a run's fixed cost.

A client that needs all of a core measures itself: its queueing shows up as
database latency and its limit as the database's throughput. One Python process
runs on one core, so a process using ``SATURATED_SHARE`` of a core or more is the
bottleneck; the remedy is more processes (``loadgen run --processes N``). These
figures are computed here once; run.json carries them, the summary and the report
read them.

The fixed cost is what a run costs around its measured period: from the process's
start to the first attempt (imports, reset, connections) and from the end of the
last attempt to the report written (results, invariants, report).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from loadgen.results.records import RunRecord

__all__ = [
    "SATURATED_SHARE",
    "client_load",
    "saturation_note",
    "busiest_share",
    "process_start_time",
    "fixed_cost",
    "attempt_span",
    "record_fixed_cost",
    "collector_paused",
]

#: The share of one core at which a load generator process counts as saturated.
SATURATED_SHARE = 0.9


def client_load(wall_s: float, cpu_s: float, attempts: int, workers: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """run.json's ``client``: this process's CPU over the load phase, plus every worker's.

    ``cpu_utilization`` is the CPU of all processes over the wall time (more than 1.0
    with several processes); ``busiest_process_share`` is the most any one process used
    of its core, which is what says whether the client was the bottleneck.
    """
    shares = [cpu_s / wall_s] if wall_s > 0 else []
    own = cpu_s
    for w in workers or ():
        w_cpu, w_wall = float(w.get("cpu_s", 0.0)), float(w.get("wall_s", 0.0))
        cpu_s += w_cpu
        if w_wall > 0:
            shares.append(w_cpu / w_wall)
    busiest = max(shares, default=0.0)
    load: dict[str, Any] = {
        "wall_s": round(wall_s, 3),
        "cpu_s": round(cpu_s, 3),
        "cpu_utilization": round(cpu_s / wall_s, 3) if wall_s > 0 else 0.0,
        "cpu_per_attempt_us": round(cpu_s / attempts * 1e6, 1) if attempts else 0.0,
        "busiest_process_share": round(busiest, 3),
        "saturated": busiest >= SATURATED_SHARE,
    }
    if workers is not None:
        load["processes"] = len(workers)
        load["master_cpu_s"] = round(own, 3)
    return load


def saturation_note(client: dict[str, Any] | None) -> str | None:
    """One sentence when the load generator saturated a core, naming the remedy; None otherwise."""
    share = busiest_share(client)
    if share is None or share < SATURATED_SHARE:
        return None
    processes = int((client or {}).get("processes") or 1)
    remedy = f"--processes {max(2, processes * 2)}" if processes > 1 else "--processes 2 (or more)"
    return (
        f"the load generator saturated a CPU core ({share:.0%} of one core): latencies include its own queueing "
        f"and the commit rate is its limit, not the database's; spread the users over more processes with {remedy}"
    )


def busiest_share(client: dict[str, Any] | None) -> float | None:
    """The most of one core any load generator process used (older run.json: the utilization), or None."""
    if not isinstance(client, dict):
        return None
    share = client.get("busiest_process_share", client.get("cpu_utilization"))
    return float(share) if isinstance(share, (int, float)) and not isinstance(share, bool) else None


def process_start_time() -> float | None:
    """When this process started (Unix time, to about 10 ms), from Linux's process table; None elsewhere."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        # Field 22 (starttime, clock ticks since boot); the command name (field 2) may hold spaces.
        ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - age
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def fixed_cost(
    process_start: float | None, first_attempt: float | None, last_attempt_end: float | None, done: float
) -> dict[str, float] | None:
    """Seconds before the first attempt and after the last one (all Unix times); None without attempts."""
    if process_start is None or first_attempt is None or last_attempt_end is None:
        return None
    startup, teardown = first_attempt - process_start, done - last_attempt_end
    return {"startup_s": round(startup, 3), "teardown_s": round(teardown, 3), "total_s": round(startup + teardown, 3)}


def attempt_span(attempts: pd.DataFrame) -> tuple[float, float] | None:
    """(start of the first attempt, end of the last one) as Unix times, from the attempt table; None if empty."""
    if attempts.empty:
        return None
    started = attempts["started_at"]
    ends = started + pd.to_timedelta(attempts["latency_ms"], unit="ms")
    return started.min().timestamp(), ends.max().timestamp()


def record_fixed_cost(run_dir: Path, fixed: dict[str, float]) -> None:
    """Add the fixed cost to run.json's ``client`` (through its one reader and writer, RunRecord):
    it is known only once the report is written."""
    record = RunRecord.read(run_dir)
    record.client = {**(record.client or {}), "fixed_cost_s": fixed}
    record.write(run_dir)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a bounded burst of allocation; as it was afterwards.

    Importing matplotlib and drawing a report make hundreds of thousands of objects
    that live until the page is written; the collector's passes over them (and over
    everything loaded before) were two fifths of a run report's CPU. Nothing is lost: the
    cycles left are collected once the collector runs again.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
