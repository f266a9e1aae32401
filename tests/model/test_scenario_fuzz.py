"""Fuzz the scenario loader: any document either loads as valid scenarios or raises ConfigError.

ConfigError is the one error type the CLI turns into a one-line message and exit code 2,
so no input can produce a traceback.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadgen.errors import ConfigError
from loadgen.model.scenario import Scenario
from loadgen.model.scenariofile import KNOBS, load_text

scalars = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(
        [
            "uniform",
            "zipf",
            "hotspot",
            "hotset",
            "exponential",
            "full-jitter",
            "none",
            "30s",
            "2m",
            "closed",
            "batches",
            "open",
            "update-returning",
            "multi-leg",
            "-1s",
            "0",
            "1e309",
        ]
    ),
)
values = st.one_of(scalars, st.lists(scalars, min_size=0, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=2))
known = st.sampled_from([k.key for k in KNOBS])
keys = st.one_of(known, known, known, st.text(min_size=1, max_size=10))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def _document(entries: dict[str, Any]) -> str:
    # Dotted keys are valid TOML for tables: keys.distribution = "zipf".
    return "\n".join(f"{'.'.join(json.dumps(p) for p in k.split('.'))} = {_toml_value(v)}" for k, v in entries.items())


def _check(text: str) -> None:
    try:
        loaded = load_text(text, "fuzz.toml")
    except ConfigError as e:
        message = str(e)
        assert message.startswith("fuzz.toml") or message.startswith("command line"), message
        assert "\n" not in message.strip() or "not valid TOML" in message
        return
    assert loaded.cells
    for cell in loaded.cells:
        assert isinstance(cell.scenario, Scenario)
        assert cell.scenario.accounts >= 2 and cell.scenario.users >= 1


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, values, max_size=6))
def test_structured_documents(entries: dict[str, Any]) -> None:
    _check(_document(entries))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    _check(text)


def test_an_enormous_sweep_is_refused_before_it_is_built() -> None:
    text = "\n".join(f"{k} = {list(range(2, 40))}" for k in ("accounts", "users", "initial_balance", "amount"))
    try:
        load_text(text, "big.toml")
    except ConfigError as e:
        assert "at most 10,000" in str(e) and "2,085,136 cells" in str(e)
    else:
        raise AssertionError("a 2-million-cell sweep was accepted")
