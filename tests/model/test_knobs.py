"""The knob table reaches every front end with the same default, and a bad value is one line everywhere.

No database: the CLI parser, the scenario-file loader, the web UI's Locust options and
the worker transport are all exercised in this process.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import tomllib

import pytest
from locust.argument_parser import LocustArgumentParser
from repo import REPO

from loadgen.cli.arguments import scenario_file_from_args
from loadgen.cli.main import main
from loadgen.cli.parser import build_parser
from loadgen.cli.ui import ui_form_defaults
from loadgen.errors import ConfigError
from loadgen.model.knobs import BY_KEY, FORM, KNOBS, Knob, build_scenario, field_default, field_value, scenario_from_dict, target_problem
from loadgen.model.retry import RetryPolicy
from loadgen.model.scenario import Scenario
from loadgen.model.scenariofile import load_text
from loadgen.targets.spec import KINDS
from loadgen.ui.form import FORM_KNOBS, FORM_TYPES, UI_TARGETS, add_arguments, scenario_from_options

FIELD_KNOBS = [k for k in KNOBS if k.field is not None]
FLAG_KNOBS = [k for k in KNOBS if k.flag is not None]


def _ids(knobs: list) -> list[str]:
    return [k.key for k in knobs]


def _ui_parser() -> LocustArgumentParser:
    parser = LocustArgumentParser()
    add_arguments(parser)
    return parser


def _run_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def _text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_every_scenario_field_has_exactly_one_knob() -> None:
    fields = [f.name for f in dataclasses.fields(Scenario) if f.name != "retry"]
    fields += [f"retry.{f.name}" for f in dataclasses.fields(RetryPolicy)]
    declared = [k.field for k in FIELD_KNOBS]
    assert sorted(declared) == sorted(fields)


def test_the_scenario_readme_shows_every_key_with_its_default() -> None:
    text = (REPO / "scenarios" / "README.md").read_text()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    for knob in KNOBS:
        assert re.search(rf"\b{knob.key.rsplit('.', 1)[-1]}\b", block), f"{knob.key} is not in scenarios/README.md"
    doc = tomllib.loads(block)
    flat = {f"{k}.{sub}": v for k, t in doc.items() if isinstance(t, dict) for sub, v in t.items()}
    flat.update({k: v for k, v in doc.items() if not isinstance(v, dict)})
    shown_otherwise = {"name", "description", "accounts", "spawn_rate", "seed", "target.kind"}  # an example, not a default
    for key, value in flat.items():
        knob = BY_KEY[key]
        if key not in shown_otherwise:
            assert knob.to_field(knob.parse(value, "README")) == field_default(knob.field), key


def test_flags_are_unique_and_each_form_field_is_named_as_its_flag() -> None:
    flags = [k.flag for k in FLAG_KNOBS]
    assert len(flags) == len(set(flags))
    ui_fields = {a.dest: a.option_strings for a in _ui_parser()._actions}
    for knob in FORM_KNOBS:
        assert knob.form_dest == knob.dest and knob.flag in ui_fields[knob.form_dest], knob.key
    # One name per concept: the key distribution is keys and the retry deadline deadline, in
    # the command line and the form alike; the form's old spellings still parse, as aliases.
    assert {"keys", "deadline"} <= set(FORM_TYPES) and not {"distribution", "retry_deadline"} & set(FORM_TYPES)
    opts = _ui_parser().parse_args(["--distribution", "zipf", "--retry-deadline", "4"])
    assert (opts.keys, opts.deadline) == ("zipf", 4.0)
    with pytest.raises(ValueError, match="form is FORM or LOCUST"):
        Knob("x", "int", "x", field="accounts", form="--x")
    with pytest.raises(ValueError, match="for a knob with a flag"):
        Knob("x", "int", "x", field="accounts", form=FORM)


@pytest.mark.parametrize("knob", FIELD_KNOBS, ids=_ids(FIELD_KNOBS))
def test_an_empty_scenario_file_gives_each_default(knob) -> None:
    scenario = load_text("", "empty.toml").cells[0].scenario
    if knob.key in ("name", "spawn_rate"):
        return  # the file's name; everyone at once (spawn rate = users)
    assert field_value(scenario, knob.field) == field_default(knob.field)


@pytest.mark.parametrize("knob", FLAG_KNOBS, ids=_ids(FLAG_KNOBS))
def test_every_flag_reaches_the_parser_with_the_default_in_its_help(knob) -> None:
    assert _run_args().__dict__[knob.dest] is None  # not given: the file or the Scenario decides
    (action,) = [a for a in build_parser()._subparsers._group_actions[0].choices["run"]._actions if knob.flag in a.option_strings]
    assert f"(default {knob.default_shown()})" in action.help


@pytest.mark.parametrize("knob", [k for k in FLAG_KNOBS if not k.optional], ids=_ids([k for k in FLAG_KNOBS if not k.optional]))
def test_the_default_given_as_a_flag_changes_nothing(knob) -> None:
    default = knob.default
    text = f"{default:g}s" if knob.kind.startswith("duration") else _text(default)
    scenario = scenario_file_from_args(_run_args(knob.flag, text)).cells[0].scenario
    assert field_value(scenario, knob.field) == field_default(knob.field) or knob.key == "spawn_rate"
    assert dataclasses.replace(scenario, spawn_rate=Scenario().spawn_rate) == Scenario()


@pytest.mark.parametrize("knob", FLAG_KNOBS, ids=_ids(FLAG_KNOBS))
def test_a_flag_sets_its_field_as_the_file_key_does(knob) -> None:
    value = {"int": 3, "number": 0.5, "duration": 7.0, "duration0": 0.25}.get(knob.kind)
    if knob.kind == "choice":
        value = next(c for c in knob.choices if c != knob.default)
    if knob.key == "retry.cap_ms":
        value = 2000.0  # above the base
    if knob.key == "accounts":
        value = 30  # above hotset_k
    if knob.key == "keys.hotset_k":
        value = 5
    # A lock timeout is for cc locking; another isolation level than snapshot for cc nowait or locking.
    locking = knob.key in ("postgres.lock_timeout_ms", "postgres.isolation")
    args = _run_args(knob.flag, _text(value), *(["--cc", "locking"] if locking else []))
    from_flag = scenario_file_from_args(args).cells[0].scenario
    toml_value = json.dumps(value)
    table, _, key = knob.key.rpartition(".")
    doc = ('cc = "locking"\n' if locking else "") + (f"[{table}]\n{key} = {toml_value}\n" if table else f"{key} = {toml_value}\n")
    from_file = load_text(doc, "k.toml").cells[0].scenario
    assert field_value(from_flag, knob.field) == field_value(from_file, knob.field)
    assert field_value(from_flag, knob.field) != field_default(knob.field) or knob.key == "spawn_rate"


@pytest.mark.parametrize("knob", FLAG_KNOBS, ids=_ids(FLAG_KNOBS))
def test_a_bad_flag_value_is_one_line_and_exit_2(knob, capsys: pytest.CaptureFixture[str]) -> None:
    bad = "-5" if knob.kind in ("int", "number") else "nonsense"
    if knob.key == "seed" or knob.key == "postgres.lock_timeout_ms":
        bad = "-1"
    with pytest.raises(SystemExit) as exit_:
        main(["run", knob.flag, bad])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"loadgen: argument {knob.flag}: ")


@pytest.mark.parametrize("knob", FIELD_KNOBS, ids=_ids(FIELD_KNOBS))
def test_a_bad_file_value_names_the_file_and_the_key(knob) -> None:
    table, _, key = knob.key.rpartition(".")
    doc = f"[{table}]\n{key} = true\n" if table else f"{key} = true\n"
    with pytest.raises(ConfigError, match=rf"^bad\.toml: {knob.key}: "):
        load_text(doc, "bad.toml")


def test_the_ui_form_has_each_default() -> None:
    opts = _ui_parser().parse_args([])
    for knob in FORM_KNOBS:
        assert getattr(opts, knob.form_dest) == knob.form_value(field_default(knob.field)), knob.key
    scenario = scenario_from_options(opts, Scenario().users)
    assert dataclasses.replace(scenario, name=Scenario().name, duration_s=Scenario().duration_s) == Scenario()
    assert set(FORM_TYPES) == {k.form_dest for k in FORM_KNOBS} | {"target"}


def test_the_ui_offers_only_targets_it_can_start() -> None:
    (action,) = [a for a in _ui_parser()._actions if "--target" in a.option_strings]
    # From the kinds table: those whose required options the form asks for (DSQL needs its endpoint).
    assert tuple(action.choices) == UI_TARGETS == ("embedded", "postgres")
    assert UI_TARGETS == tuple(k.name for k in KINDS.values() if not set(k.required) - {"dsn"})
    assert action.help == "Database: loadgen's embedded PostgreSQL or any PostgreSQL (its dsn)"


def test_a_scenario_file_becomes_the_form_and_comes_back(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        "cc = 'locking'\naccounts = 37\nusers = 12\nseed = 4\n[keys]\ndistribution = 'hotset'\nhotset_k = 5\n"
        "[retry]\nmax_attempts = 7\nbackoff = 'full-jitter'\ndeadline = '3s'\n[postgres]\nlock_timeout_ms = 2\n"
        "[transaction]\nshape = 'multi-leg'\n"
    )
    form = ui_form_defaults(scenario_file_from_args(build_parser().parse_args(["ui", str(path)])))
    assert "not used: transaction.shape" in capsys.readouterr().out
    users = int(form.pop("--users"))
    form.pop("--spawn-rate")
    opts = _ui_parser().parse_args([x for kv in form.items() for x in kv])
    back = scenario_from_options(opts, users)
    original = load_text(path.read_text(), "s.toml").cells[0].scenario
    for knob in FORM_KNOBS:
        assert field_value(back, knob.field) == field_value(original, knob.field), knob.key
    assert back.users == 12


def test_ui_options_override_the_scenario_in_the_form() -> None:
    form_knobs = [k for k in KNOBS if k.form is not None and k.flag is not None]
    ui = build_parser()._subparsers._group_actions[0].choices["ui"]
    assert {k.flag for k in form_knobs} <= {s for a in ui._actions for s in a.option_strings}
    args = build_parser().parse_args(["ui", "quickstart", "--keys", "zipf", "--zipf-s", "1.5", "--users", "7", "--accounts", "40"])
    form = ui_form_defaults(scenario_file_from_args(args))
    assert form["--keys"] == "zipf" and form["--zipf-s"] == "1.5" and form["--accounts"] == "40" and form["--users"] == "7"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["ui", "--shape", "multi-leg"])  # not in the form: not a ui option


def test_a_bad_form_value_is_one_line() -> None:
    opts = _ui_parser().parse_args(["--accounts", "1"])
    with pytest.raises(ConfigError, match="^accounts must be at least 2, got 1$"):
        scenario_from_options(opts, 5)


def test_zero_in_an_optional_field_means_unset_in_file_and_form() -> None:
    assert load_text("[postgres]\nlock_timeout_ms = 0\n", "z.toml").cells[0].scenario.lock_timeout_ms is None
    assert scenario_file_from_args(_run_args("--lock-timeout-ms", "0")).cells[0].scenario.lock_timeout_ms is None
    opts = _ui_parser().parse_args(["--lock-timeout-ms", "0", "--seed", "0"])
    s = scenario_from_options(opts, 5)
    assert s.lock_timeout_ms is None and s.seed is None


def test_think_time_is_seconds_outside_and_milliseconds_inside() -> None:
    assert build_scenario({"load.think_time": 0.05}).think_ms == pytest.approx(50.0)
    assert BY_KEY["load.think_time"].default == 0.0


def test_the_worker_transport_round_trips_every_field() -> None:
    s = (
        load_text(
            "cc = 'locking'\naccounts = 40\nseed = 9\namount_max = 5\n[keys]\ndistribution = 'zipf'\nzipf_s = 1.3\n[retry]\nbackoff = 'exponential'\n"
            "[load]\nthink_time = '20ms'\n[postgres]\nlock_timeout_ms = 1\nisolation = 'serializable'\n",
            "t.toml",
        )
        .cells[0]
        .scenario
    )
    assert scenario_from_dict(json.loads(json.dumps(s.to_dict()))) == s
    with pytest.raises(ConfigError, match="unknown fields frobnicate"):
        scenario_from_dict({**s.to_dict(), "frobnicate": 1})


def test_a_target_refuses_knobs_it_cannot_honour() -> None:
    s = build_scenario({"cc": "locking", "postgres.lock_timeout_ms": 1.0})
    assert target_problem("postgresql", s) is None
    assert "DSQL takes no row locks" in (target_problem("dsql", s) or "")
    s = build_scenario({"cc": "nowait", "postgres.isolation": "serializable"})  # cc occ reads at a snapshot: repeatable-read only
    # The isolation level is the root cause: refused for that before its cc.
    assert (target_problem("dsql", s) or "").startswith("isolation serializable: DSQL has one isolation level")
    assert "DSQL takes no row locks" in (target_problem("dsql", build_scenario({"cc": "nowait"})) or "")
    assert target_problem("dsql", Scenario()) is None  # defaults are fine everywhere
    assert all(k.refusal for k in KNOBS if k.dialects is not None)


@pytest.mark.parametrize("flag", ["--processes", "--expect-workers", "--master-port"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_positive_options_refuse_zero_and_negatives(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", flag, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"loadgen: argument {flag}: must be at least 1, got {int(value)}"
