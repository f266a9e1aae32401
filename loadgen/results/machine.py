"""What the machine was doing while a run was measured: CPU busy share, load average, the server's CPU.

A saturated *client* is one cause of distorted figures (loadgen.results.client_cpu); a
saturated *machine* is the wider one: on a laptop or a 2-core CI runner the embedded
server, the load generator and everything else share the cores, and once they are all
busy every attempt also waits for a CPU. Latencies then measure queueing, throughput
the machine's limit, and the first-order model's D is no longer the database's window.

``MachineWindow`` reads ``/proc/stat`` (and, for the embedded server, its processes'
``/proc/<pid>/stat``) at the start and the end of the measured period; run.json's
``machine`` gets the difference. Where ``/proc`` is missing (macOS) the figures are None.

``light_rtt_ms`` is the other reference: one connection's round trip on the same target
before the load starts, so an attempt's latency can be compared with what it would take
lightly loaded (loadgen.results.warnings).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

__all__ = ["MachineWindow", "cpu_times", "process_tree_cpu_s", "light_rtt_ms"]

_PROC = Path("/proc")


def cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat; None without /proc."""
    try:
        with open(_PROC / "stat") as f:
            first = f.readline().split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    values = [float(v) for v in first[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: already inside user/nice]
    total = sum(values[:8])
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)
    return total - idle, total


def _stat(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    return text[text.rfind(")") + 2 :].split()


def process_tree_cpu_s(pid: int) -> float | None:
    """CPU seconds of process ``pid`` and its children: their own time, live or already reaped.

    Fields after the name (state is index 0): ppid 1, utime 11, stime 12, cutime 13, cstime 14.
    A PostgreSQL postmaster's children are its backends and helpers; a backend that exits
    adds its time to the postmaster's cutime/cstime.
    """
    me = _stat(pid)
    if me is None:
        return None
    tick = float(os.sysconf("SC_CLK_TCK"))
    total = sum(float(v) for v in me[11:15])
    try:
        entries = [int(p.name) for p in _PROC.iterdir() if p.name.isdigit()]
    except OSError:
        entries = []
    for child in entries:
        st = _stat(child)
        if st is not None and len(st) > 12 and st[1] == str(pid):
            total += float(st[11]) + float(st[12])
    return total / tick


class MachineWindow:
    """The machine's CPU (and the embedded server's) between ``start()`` and ``stop()``."""

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self._t0: float | None = None
        self._cpu0: tuple[float, float] | None = None
        self._server0: float | None = None
        self.result: dict[str, Any] | None = None

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._cpu0 = cpu_times()
        self._server0 = process_tree_cpu_s(self.server_pid) if self.server_pid else None

    def stop(self) -> dict[str, Any]:
        """The window's figures (the first call's, if called again)."""
        if self.result is not None:
            return self.result
        wall = time.monotonic() - self._t0 if self._t0 is not None else 0.0
        cpu1 = cpu_times()
        busy: float | None = None
        if self._cpu0 is not None and cpu1 is not None and cpu1[1] > self._cpu0[1]:
            busy = round((cpu1[0] - self._cpu0[0]) / (cpu1[1] - self._cpu0[1]), 3)
        try:
            load = [round(v, 2) for v in os.getloadavg()]
        except OSError:
            load = None
        out: dict[str, Any] = {"host_cpu_busy": busy, "load_average": load, "window_s": round(wall, 3)}
        if self.server_pid:
            server1 = process_tree_cpu_s(self.server_pid)
            if self._server0 is not None and server1 is not None and wall > 0:
                cpu_s = max(0.0, server1 - self._server0)
                out["server_cpu_s"] = round(cpu_s, 3)
                out["server_cpu_cores"] = round(cpu_s / wall, 3)  # cores' worth the server used on average
        self.result = out
        return out


def light_rtt_ms(execute: Any, n: int = 20) -> float | None:
    """The median of ``n`` trivial round trips (``execute("SELECT 1")``) on an idle connection, in ms."""
    times = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            execute("SELECT 1")
            times.append((time.perf_counter() - t0) * 1000.0)
    except Exception:  # noqa: BLE001 - a reference, never a reason to fail a run
        return None
    return round(statistics.median(times), 4) if times else None
