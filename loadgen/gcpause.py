"""Python's cyclic garbage collector paused for a bounded burst of allocation (a report, a run's finish)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a bounded burst of allocation; as it was afterwards.

    Importing matplotlib and drawing a report make hundreds of thousands of objects
    that live until the page is written; the collector's passes over them (and over
    everything loaded before) were two fifths of a run report's CPU. Nothing is lost: the
    cycles left are collected once the collector runs again.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
