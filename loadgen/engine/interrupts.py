"""Ctrl-C and SIGTERM for a whole command: the first stops gracefully, the second leaves at once.

One handler per process, installed once and never removed. gevent's signal watchers
put a signal back to its default action when the last watcher stops, so a handler
that lived only while a run's users ran let a Ctrl-C between two cells of a sweep
(or while a cell's report was written) kill the process outright; and a process a
script started in the background inherits SIGINT ignored, so Python's own
KeyboardInterrupt never comes. This handler is there from the command's start to its end:

- while a run's load is going (:func:`stopping`), the first signal calls that run's
  ``stop``: users finish the transaction in hand, the results are written;
- otherwise (setting up, between cells) it raises KeyboardInterrupt in the main
  greenlet, where the sweep marks the cells not run and writes what finished;
- the second signal exits at once (130); what reached disk stays.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gevent
import greenlet

__all__ = ["install", "stopping", "EXIT_AT_ONCE"]

#: The exit status of a second Ctrl-C (as a shell reports a process killed by SIGINT).
EXIT_AT_ONCE = 130

_stoppers: list[Callable[[], None]] = []
_state: dict[str, Any] = {"signals": 0, "main": None, "watchers": []}


def install() -> None:
    """Handle SIGINT and SIGTERM from now on, in this process (again: nothing to do)."""
    if _state["watchers"]:
        return
    _state["main"] = greenlet.getcurrent()
    _state["watchers"] = [gevent.signal_handler(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)]


@contextmanager
def stopping(stop: Callable[[], None]) -> Iterator[None]:
    """While inside, the first signal calls ``stop`` instead of interrupting the main greenlet."""
    install()
    _stoppers.append(stop)
    try:
        yield
    finally:
        _stoppers.remove(stop)


def _on_signal() -> None:
    _state["signals"] += 1
    if _state["signals"] > 1:
        os._exit(EXIT_AT_ONCE)
    if _stoppers:
        print("\nstopping: finishing transactions in flight (Ctrl-C again to quit at once)", file=sys.stderr, flush=True)
        _stoppers[-1]()
        return
    print("\nstopping (Ctrl-C again to quit at once)", file=sys.stderr, flush=True)
    gevent.get_hub().loop.run_callback(_interrupt_main)


def _interrupt_main() -> None:
    # Run by the hub, as gevent throws a KeyboardInterrupt of its own, without its traceback. The main
    # greenlet may have started a run's load since the signal came: that run is stopped instead.
    if _stoppers:
        gevent.spawn(_stoppers[-1])
    else:
        _state["main"].throw(KeyboardInterrupt)
