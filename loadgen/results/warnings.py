"""Reasons not to trust a run's figures, one sentence each, decided in one place.

run.json's ``warnings`` is this list for the run, written when it ends; the report
shows the same sentences (loadgen.report.cells.warnings_for adds only what compares
cells with each other), and the summary prints them. A warning is about the
measurement, not the database: a run cut short, too few attempts to pin the rate, a
saturated load generator, a saturated machine, attempts far slower than the same
target answers when lightly loaded, fewer transactions in flight than users asked.

``distortion`` is the subset that makes the first-order model and the what-if
simulation meaningless for the run (their sections say "does not apply"): the
saturated machine, the queued attempts and the users not kept in flight.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loadgen.model.occsim import statements
from loadgen.results.client_cpu import saturation_note
from loadgen.results.metrics import CONFLICT_RATE, wilson_interval

__all__ = [
    "run_warnings",
    "workload_warnings",
    "distortion",
    "machine_saturated",
    "latency_inflation",
    "HOST_BUSY_SATURATED",
    "LATENCY_FAR_ABOVE",
    "MIN_ATTEMPTS",
    "MIN_ATTEMPTS_ANY",
]

#: The machine's CPUs this busy over the measured period (all of them, every process): saturated.
HOST_BUSY_SATURATED = 0.95
#: Attempt p50 this many times what the target takes lightly loaded: the attempts were queueing.
LATENCY_FAR_ABOVE = 20.0
#: With no conflict at all, fewer attempts than this cannot tell a rate of 0 from one of a few tenths of a percent.
MIN_ATTEMPTS = 1000
#: Below this, no rate is worth comparing; above it, the 95% interval decides (wider than +-20% of the rate: warn).
MIN_ATTEMPTS_ANY = 200


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _n(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def machine_saturated(doc: Mapping[str, Any]) -> str | None:
    """A sentence when the machine's CPUs were (nearly) all busy over the measured period."""
    m = _d(doc.get("machine"))
    busy = m.get("host_cpu_busy")
    if not isinstance(busy, (int, float)) or busy < HOST_BUSY_SATURATED:
        return None
    load = m.get("load_average")
    cpus = m.get("cpus")
    parts = [f"its CPUs {busy:.0%} busy over the measured period"]
    if isinstance(load, list) and load:
        parts.append(f"load average {load[0]:g}" + (f" on {cpus} cores" if cpus else ""))
    if isinstance(m.get("server_cpu_cores"), (int, float)):
        parts.append(f"the database server used {m['server_cpu_cores']:.2f} cores")
    client = _d(doc.get("client"))
    if isinstance(client.get("cpu_utilization"), (int, float)):
        parts.append(f"the load generator {client['cpu_utilization']:.2f}")
    return (
        "the machine was saturated: " + ", ".join(parts) + "; attempts also waited for a CPU, so latencies, "
        f"throughput and the {CONFLICT_RATE} describe this machine's limit, not the database's"
    )


def latency_inflation(doc: Mapping[str, Any]) -> tuple[float, float] | None:
    """(attempt p50 / lightly loaded attempt time, that time in ms), or None when either is unknown.

    Lightly loaded: the attempt's round trips (BEGIN, its statements, COMMIT) at the round
    trip measured on an idle connection of the same target before the load started, plus
    the emulated latency the scenario adds.
    """
    rtt = _d(doc.get("machine")).get("light_rtt_ms")
    p50 = _d(_d(doc.get("summary")).get("attempt_latency_ms")).get("p50")
    if not isinstance(rtt, (int, float)) or not isinstance(p50, (int, float)) or rtt <= 0:
        return None
    scen = _d(doc.get("scenario"))
    n = statements(str(scen.get("transaction", "update-returning")), int(_n(scen.get("legs")) or 2)) or 2
    trips = n + 2
    light = trips * (rtt + _n(scen.get("rtt_ms")) + _n(scen.get("rtt_jitter_ms"))) + _n(scen.get("commit_ms"))
    return (p50 / light, light) if light > 0 else None


def _latency_note(doc: Mapping[str, Any]) -> str | None:
    found = latency_inflation(doc)
    if found is None or found[0] < LATENCY_FAR_ABOVE:
        return None
    ratio, light = found
    p50 = doc["summary"]["attempt_latency_ms"]["p50"]
    return (
        f"attempts queued: attempt latency p50 {p50:,.1f} ms is {ratio:,.0f}x what this target takes lightly loaded "
        f"(about {light:,.2f} ms, from a round trip measured on an idle connection before the load), so the attempts "
        "waited (for a CPU, a connection or a lock) and the figures describe an overloaded system"
    )


def distortion(doc: Mapping[str, Any]) -> str | None:
    """Why the model and the what-if simulation do not describe this run, in one sentence; None when nothing does.

    A saturated machine, attempts far slower than lightly loaded, or a closed loop that
    could not keep its users in flight (its users waited for the client or the target
    outside the database: the load the run describes is not the one asked, and the
    simulation's premise, durations that do not change with the load, fails).
    """
    return machine_saturated(doc) or _latency_note(doc) or _d(doc.get("concurrency")).get("warning") or None


def workload_warnings(doc: Mapping[str, Any]) -> list[str]:
    """The load model's and the read mix's own warnings (run.json's ``load``, ``reads``): an open loop that
    could not keep up, batches cut short, audits that found money missing."""
    notes = []
    load = _d(doc.get("load"))
    if load.get("model") == "open" and not load.get("kept_up", True):
        lag = _d(load.get("start_lag_ms"))
        notes.append(
            f"open loop could not keep up: {_n(load.get('achieved_rate')):.0f} of {_n(load.get('arrival_rate')):g} transactions/s "
            f"started, {int(_n(load.get('late'))):,} of {int(_n(load.get('started'))):,} late by more than "
            f"{_n(load.get('late_threshold_ms')):g} ms (start lag p99 {_n(lag.get('p99')):.0f} ms); raise users or lower arrival_rate"
        )
    for w in load.get("workers") or []:  # the open loop across worker processes: each one's share
        if isinstance(w, dict) and not w.get("kept_up", True):
            notes.append(
                f"worker {w.get('id')} could not keep its schedule: {_n(w.get('achieved_rate')):.0f} of "
                f"{_n(w.get('arrival_rate')):g} arrivals/s started, {int(_n(w.get('late'))):,} of {int(_n(w.get('started'))):,} late"
            )
    if load.get("model") == "batches" and _n(load.get("batches_completed")) < _n(load.get("batches_planned")):
        notes.append(f"only {load['batches_completed']} of {load['batches_planned']} batches completed before the duration ran out")
    reads = _d(doc.get("reads"))
    if reads.get("audit_mismatches"):
        examples = reads.get("audit_mismatch_examples") or [""]
        notes.append(f"{reads['audit_mismatches']} of {reads.get('audits')} audits saw a wrong total: {examples[0]}")
    return notes


def run_warnings(doc: Mapping[str, Any], name: str = "this run") -> list[str]:
    """Every warning about one run, from its run.json document, each starting with ``name``."""
    out: list[str] = []
    summary = _d(doc.get("summary"))
    cut = doc.get("cut_off")
    if isinstance(cut, dict):
        out.append(
            f"{name}: the run was cut off (killed before it finished); its last attempts reached disk at "
            f"{cut.get('last_write') or 'an unknown time'}, {cut.get('attempts_on_disk', 0):,} attempts in all; "
            "rates cover only that part, and the bank's invariants were never checked."
        )
    elif doc.get("completed") is False:
        out.append(f"{name}: the run was interrupted (incomplete); its rates cover only the part that ran.")
    elif doc.get("completed") is None:
        out.append(f"{name}: no run.json or no completion flag: the run may be incomplete.")
    attempts = int(_n(summary.get("attempts")))
    conflicts = int(_n(summary.get("conflicts")))
    rate = summary.get("conflict_rate") or 0.0
    ci = wilson_interval(conflicts, attempts)
    wide = ci is not None and rate > 0 and (ci[1] - ci[0]) / 2 > 0.2 * rate
    if attempts < MIN_ATTEMPTS_ANY or wide or (rate == 0 and attempts < MIN_ATTEMPTS):
        span = f" (95% interval {ci[0]:.2%} to {ci[1]:.2%})" if ci else ""
        shown = "-" if summary.get("conflict_rate") is None else f"{rate:.2%}"
        out.append(f"{name}: only {attempts:,} attempts and {conflicts:,} conflicts: the {CONFLICT_RATE} {shown} is uncertain{span}.")
    note = saturation_note(_d(doc.get("client")) or None)
    if note:
        out.append(f"{name}: {note}.")
    for sentence in (machine_saturated(doc), _latency_note(doc)):
        if sentence:
            out.append(f"{name}: {sentence}.")
    out += [f"{name}: {note}." for note in workload_warnings(doc)]
    conc = _d(doc.get("concurrency"))
    if conc.get("warning"):
        out.append(f"{name}: {conc['warning']}.")
    if doc.get("invariants_hold") is False:
        out.append(f"{name}: invariants VIOLATED (see below): the database lost or invented money.")
    return out
