"""Metadata: what ran, where and when, as run.json says it (secrets redacted)."""

from __future__ import annotations

import json

from loadgen.report.cells import Cell
from loadgen.report.data import redact
from loadgen.report.html import esc, section, table

__all__ = ["metadata_section"]


def metadata_section(cells: list[Cell], p: str) -> str:
    """run.json's provenance as written (target, machine and load generator as JSON), one block per cell."""
    parts = []
    for c in cells:
        m = c.run.meta
        rows = [
            ["run", esc(c.run.run_id)],
            ["directory", esc(c.run.path)],
            ["started", esc(m.get("started_at", "-"))],
            ["ended", esc(m.get("ended_at", "-"))],
            ["completed", esc(m.get("completed", "unknown"))],
            ["command line", esc(" ".join(map(str, redact(m.get("command_line") or []))) or "-")],
            ["target", esc(json.dumps(redact(c.run.target), default=str))],
            ["machine", esc(json.dumps(m.get("machine", {}), default=str))],
        ]
        rows += [[esc(f"version: {k}"), esc(v)] for k, v in c.run.versions.items()]
        if isinstance(m.get("client"), dict):
            rows.append(["load generator", esc(json.dumps(m["client"]))])
        rows += [
            [
                esc(f"invariant: {i.name}"),
                ('<span class="ok">ok</span> ' if i.ok else '<span class="bad">VIOLATED</span> ') + esc(i.detail or ""),
            ]
            for i in c.run.sections.invariants or ()
        ]
        scen = f"<pre>{esc(json.dumps(redact(c.run.scenario), indent=2, default=str))}</pre>"
        parts.append(f"<details><summary>{esc(c.label)}</summary>{table(['', ''], rows)}<h3>Scenario</h3>{scen}</details>")
    return section(f"{p}metadata", "Metadata", "".join(parts))
