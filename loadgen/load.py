"""Load models: how transactions arrive at the database.

``workload_for(scenario)`` gives the Locust user class a run uses, and a function
returning what the run adds to run.json.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loadgen.scenario import Scenario
from loadgen.users import TransferUser

__all__ = ["workload_for"]


def workload_for(scenario: Scenario) -> tuple[type[TransferUser], Callable[[], dict[str, Any]]]:
    return TransferUser, dict
