"""Locust's exit code by loadgen's rule: 0 when every test's invariants held, 1 when one broke.

Locust exits 1 when any request failed, and to Locust every conflicted attempt is a
failed request; a CI job built on ``locust -f loadgen/ui/locustfile.py --headless``
would fail on every healthy run. To loadgen a conflict is the measurement. What is a
failure is money created or lost (a broken invariant) or results that could not be
written, as ``loadgen run`` says with its own exit code 1. An interrupted test (Ctrl-C
while users run) exits 130, as ``loadgen run`` does. A test above one of its gates
(``--max-conflict-rate`` ..., loadgen.results.gates) exits 3, one line per breach;
broken invariants win over gates.
"""

from __future__ import annotations

import logging
from typing import Any

from loadgen.errors import LoadgenError
from loadgen.results.gates import EXIT_GATE, breach_lines
from loadgen.results.rundir import read_run

__all__ = ["ExitCode", "EXIT_OK", "EXIT_BROKEN", "EXIT_INTERRUPTED", "EXIT_GATE"]

EXIT_OK, EXIT_BROKEN, EXIT_INTERRUPTED = 0, 1, 130

log = logging.getLogger(__name__)


class ExitCode:
    """Watches each test's end for broken invariants; sets the process exit code when Locust quits."""

    def __init__(self, plugin: Any) -> None:
        self.plugin = plugin  # loadgen.ui.webui.LoadgenPlugin: its run_dir, error and role
        self.env = plugin.env
        self.broken: list[str] = []  # one line per test that broke an invariant or lost its results
        self.breached: list[str] = []  # one line per gate a test breached

    def register(self) -> None:
        # Registered after the plugin's own listeners (webui.install): its test_stop has written the run by now.
        self.env.events.test_stop.add_listener(self.on_test_stop)
        self.env.events.quitting.add_listener(self.on_quitting)

    def on_test_stop(self, **_: Any) -> None:
        plugin = self.plugin
        if plugin.error:
            self.broken.append(plugin.error)
            return
        if plugin.run_dir is None:
            if plugin.role == "local":  # a master's or a worker's checks run where the attempts are
                self.broken.append("the test ended before its results were written (stopped while the bank was being seeded?)")
            return
        try:
            record = read_run(plugin.run_dir)
        except LoadgenError as e:
            self.broken.append(str(e))
            return
        if record is None:
            self.broken.append(f"{plugin.run_dir}: no run.json written")
            return
        if not record.invariants_hold:
            failed = [i.detail or i.name for i in record.sections.invariants or () if not i.ok]
            self.broken.append(f"{plugin.run_dir.name}: invariants broken: {'; '.join(map(str, failed))}")
        self.breached += breach_lines(record.to_dict().get("gates"), f" ({plugin.run_dir.name})")

    def on_quitting(self, environment: Any, **_: Any) -> None:
        state = getattr(environment.runner, "state", None)
        if self.broken:
            code = EXIT_BROKEN
        elif state in ("spawning", "running"):
            code = EXIT_INTERRUPTED  # quit while users ran: no test finished its checks
        elif self.breached:
            code = EXIT_GATE
        else:
            code = EXIT_OK
        environment.process_exit_code = code
        for line in self.broken + self.breached:
            log.error("loadgen: %s", line)
