"""The load generator's own CPU: per attempt, per process, and whether a core was saturated.

A client that needs all of a core measures itself: its queueing shows up as
database latency and its limit as the database's throughput. One Python process
runs on one core, so a process using ``SATURATED_SHARE`` of a core or more is the
bottleneck; the remedy is more processes (``loadgen run --processes N``). These
figures are computed here once; run.json's ``client`` carries them, the summary,
the warnings and the report read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["SATURATED_SHARE", "client_load", "saturation_note", "busiest_share"]

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
