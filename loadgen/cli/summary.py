"""Text the terminal shows at the end of a run: the summary (figures from loadgen.results.metrics)."""

from __future__ import annotations

from typing import Any

from loadgen.engine.progress import progress_line
from loadgen.model.outcomes import CONTENTION, Outcome
from loadgen.results.gates import gate_text
from loadgen.results.metrics import CONFLICT_RATE, KIND_LABELS, breakdown, percent

__all__ = ["format_summary", "progress_line"]


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def format_summary(result: Any) -> str:
    s: dict[str, Any] = result.summary
    a, t = s["attempt_latency_ms"], s["transaction_latency_ms"]
    other = {k: v for k, v in s["outcomes"].items() if k != Outcome.COMMITTED and k not in CONTENTION}
    lines = [""]
    cc = getattr(result, "cc", None)
    if cc:
        lines.append(f"  cc                {cc['mode']}: {cc['how']}")
    warmup = getattr(result, "warmup", None)
    if warmup:
        lines.append(
            f"  warm-up           {warmup['connections']:,} connections opened in {warmup['seconds']:.1f} s, before the measured period"
        )
    by_kind = breakdown(s.get("conflicts_by_kind") or {}, KIND_LABELS)
    warned = getattr(result, "warnings", None) or []
    lines += [
        f"  {CONFLICT_RATE:<18}{percent(s['conflict_rate'])}   {s['conflicts']:,} of {s['attempts']:,} attempts failed on contention"
        + ("" if result.completed else "   (run interrupted: incomplete)")
        + (f"   (see the {len(warned)} WARNING line{'s' if len(warned) != 1 else ''} below)" if warned else ""),
    ]
    if by_kind:
        lines.append(f"    conflicts by kind  {by_kind}")
    lines += [
        f"  commits           {s['commits']:,}   ({_ms(s['throughput_commits_per_s'])}/s over {s['elapsed_s']:.1f} s)",
        f"  retried           {percent(s['retried_share'])} of transactions, "
        f"{'-' if s['retries_per_commit'] is None else format(s['retries_per_commit'], '.4f')} retries per commit, "
        f"at most {s['max_attempts']} attempts",
    ]
    if other:
        lines.append("  other outcomes    " + ", ".join(f"{k} {v:,}" for k, v in other.items()))
    conc = getattr(result, "concurrency", None)
    if conc and conc.get("in_flight_mean") is not None:
        lines.append(
            f"  in flight         {conc['in_flight_mean']:,.1f} transactions on average, {conc['in_flight_share']:.0%} of {conc['users']:,} users"
        )
    waits = getattr(result, "lock_waits", None)
    if waits:
        lines.append(f"  lock waits        {waits['count']:,} longer than {waits['longer_than_ms']} ms ({waits['source']})")
    lines += [
        f"  latency ms        attempt p50 {_ms(a['p50'])}  p95 {_ms(a['p95'])}  p99 {_ms(a['p99'])}",
        f"                    transaction p50 {_ms(t['p50'])}  p95 {_ms(t['p95'])}  p99 {_ms(t['p99'])}",
        "  invariants        " + ", ".join(f"{i.name} {'ok' if i.ok else 'VIOLATED'}" for i in result.invariants),
    ]
    for i in result.invariants:
        if not i.ok:
            lines.append(f"    {i.name}: {i.detail}")
    if result.client:
        cl = result.client
        lines.append(f"  client CPU        {cl['cpu_utilization']:.0%} of one core, {cl['cpu_per_attempt_us']:.0f} us per attempt")
        fixed = cl.get("fixed_cost_s")
        if fixed:
            # What the time after the last attempt went to: no report after Ctrl-C (loadgen report draws it later).
            after = "results, invariants, report" if result.report is not None else "results, invariants; no report drawn"
            lines.append(
                f"  fixed cost        {fixed['total_s']:.2f} s: {fixed['startup_s']:.2f} s to the first attempt, "
                f"{fixed['teardown_s']:.2f} s after the last ({after})"
            )
    c = result.connections
    if c:
        left = c.get("left_open")
        # None: not counted (DSQL, or the server refused pg_stat_activity).
        left_text = "left open after the run not counted" if left is None else f"{left} left open after the run"
        peak = f" (at most {c['peak_open']:,} at once)" if "peak_open" in c else ""
        lines.append(f"  connections       {c['opened']:,} opened{peak}, {c['lost'] + c['returned_broken']:,} broken, {left_text}")
    if result.faults:
        kinds: dict[str, int] = {}
        for f in result.faults:
            kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
        hit = s["outcomes"].get(Outcome.CONNECTION_ERROR, 0)
        lines.append("  faults injected   " + ", ".join(f"{k} x{v}" for k, v in kinds.items()) + f"; {hit:,} attempts hit")
    m = getattr(result, "machine", None) or {}
    if m.get("host_cpu_busy") is not None:
        load = m.get("load_average") or []
        server = f", database server {m['server_cpu_cores']:.2f} cores" if m.get("server_cpu_cores") is not None else ""
        lines.append(
            f"  machine           CPUs {m['host_cpu_busy']:.0%} busy over the measured period"
            + (f", load average {load[0]:g}" if load else "")
            + server
        )
    # Every warning run.json lists (loadgen.results.warnings), and every gate the scenario set.
    for w in getattr(result, "warnings", None) or []:
        lines.append(f"  WARNING           {w.removeprefix('this run: ')}")
    for g in getattr(result, "gates", None) or []:
        lines.append(f"  gate              {gate_text(g)}")
    lines.append(f"  results           {result.run_dir}")
    return "\n".join(lines)
