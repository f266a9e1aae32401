"""A run's fixed cost: what it costs around its measured period, and its place in run.json.

From the process's start to the first attempt (imports, reset, connections) and from
the end of the last attempt to the report written (results, invariants, report). It is
known only once the report is written, so it is added to run.json's ``client`` last
(:func:`record_fixed_cost`, through run.json's one writer).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from loadgen.results.records import RunRecord

__all__ = ["process_start_time", "fixed_cost", "attempt_span", "record_fixed_cost"]


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
