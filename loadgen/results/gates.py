"""Gates for CI: limits on a run's figures, checked when it ends.

A gate names a figure of run.json's summary (loadgen.results.metrics computes it, once)
and the most it may be. ``--max-conflict-rate``, ``--max-retries-per-commit`` and
``--max-txn-p99-ms`` (``[gates]`` in a scenario file, fields of the web UI's start form)
set them. A breached gate changes nothing that is written: the run directory, the
report and the CSV files are the same; run.json's ``gates`` lists every gate set with
its limit, the run's value and whether it held, the command prints one line per breach
and exits 3. Broken invariants (exit 1) win over gates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loadgen.results.metrics import CONFLICT_RATE

__all__ = ["Gate", "GATES", "EXIT_GATE", "evaluate", "breaches", "breach_lines", "gate_text"]

#: The exit code of a run that breached a gate (and kept its invariants).
EXIT_GATE = 3


@dataclass(frozen=True)
class Gate:
    """One limit: the scenario field that sets it, the summary figure it limits, how both are shown."""

    name: str  # the scenario field and run.json's gate name: max_conflict_rate
    figure: str  # what it limits, as the summary shows it
    value: Callable[[Mapping[str, Any]], float | None]  # the run's figure, from run.json's summary
    show: Callable[[float], str]


GATES: tuple[Gate, ...] = (
    Gate("max_conflict_rate", CONFLICT_RATE, lambda s: s.get("conflict_rate"), lambda v: f"{v:.2%}"),
    Gate("max_retries_per_commit", "retries per commit", lambda s: s.get("retries_per_commit"), lambda v: f"{v:.4f}"),
    Gate(
        "max_txn_p99_ms",
        "transaction p99",
        lambda s: (s.get("transaction_latency_ms") or {}).get("p99"),
        lambda v: f"{v:,.1f} ms",
    ),
)


def evaluate(scenario: Mapping[str, Any], summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """run.json's ``gates``: one entry per gate the scenario sets: name, limit, value, ok.

    A figure the run could not measure (no commit, so no retries per commit) breaches its gate:
    CI asked for a bound and got no evidence of it.
    """
    out = []
    for gate in GATES:
        limit = scenario.get(gate.name)
        if limit is None:
            continue
        value = gate.value(summary)
        out.append({"name": gate.name, "limit": float(limit), "value": value, "ok": value is not None and value <= float(limit)})
    return out


def breaches(gates: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [g for g in gates or [] if not g.get("ok")]


def _shown(g: Mapping[str, Any]) -> tuple[str, str, str]:
    gate = next((x for x in GATES if x.name == g["name"]), None)
    show: Callable[[float], str] = gate.show if gate else str
    value = "not measured" if g.get("value") is None else show(g["value"])
    return (gate.figure if gate else g["name"]), value, show(g["limit"])


def gate_text(g: Mapping[str, Any]) -> str:
    """``max_conflict_rate ok: conflict rate 3.10%, limit 5.00%`` (or BREACHED)."""
    figure, value, limit = _shown(g)
    return f"{g['name']} {'ok' if g.get('ok') else 'BREACHED'}: {figure} {value}, limit {limit}"


def breach_lines(gates: list[dict[str, Any]] | None, where: str = "") -> list[str]:
    """One line per breached gate: ``gate max_conflict_rate breached: conflict rate 12.00% > 5.00%``."""
    lines = []
    for g in breaches(gates):
        figure, value, limit = _shown(g)
        lines.append(f"gate {g['name']} breached{where}: {figure} {value} > {limit}")
    return lines
