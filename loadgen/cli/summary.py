"""Text the terminal shows at the end of a run: the summary (figures from loadgen.results.metrics)."""

from __future__ import annotations

from typing import Any

from loadgen.engine.progress import progress_line
from loadgen.model.outcomes import Outcome
from loadgen.results.client import saturation_note

__all__ = ["format_summary", "progress_line"]


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2%}"


def format_summary(result: Any) -> str:
    s: dict[str, Any] = result.summary
    a, t = s["attempt_latency_ms"], s["transaction_latency_ms"]
    other = {k: v for k, v in s["outcomes"].items() if k not in (Outcome.COMMITTED, Outcome.CONFLICT)}
    lines = [
        "",
        f"  attempts          {s['attempts']:,}" + ("" if result.completed else "   (run interrupted: incomplete)"),
        f"  commits           {s['commits']:,}   ({_ms(s['throughput_commits_per_s'])}/s over {s['elapsed_s']:.1f} s)",
        f"  conflicts         {s['conflicts']:,}   conflict rate {_pct(s['conflict_rate'])} of attempts"
        f"; contention rate {_pct(s.get('contention_rate'))} (with deadlocks and lock timeouts)",
        f"  retried           {_pct(s['retried_share'])} of transactions, "
        f"{'-' if s['retries_per_commit'] is None else format(s['retries_per_commit'], '.4f')} retries per commit, "
        f"at most {s['max_attempts']} attempts",
    ]
    if other:
        lines.append("  other outcomes    " + ", ".join(f"{k} {v:,}" for k, v in other.items()))
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
            lines.append(
                f"  fixed cost        {fixed['total_s']:.2f} s: {fixed['startup_s']:.2f} s to the first attempt, "
                f"{fixed['teardown_s']:.2f} s after the last (results, invariants, report)"
            )
        note = saturation_note(cl)
        if note:
            lines.append(f"    SATURATED: {note}")
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
    lines.append(f"  results           {result.run_dir}")
    return "\n".join(lines)
