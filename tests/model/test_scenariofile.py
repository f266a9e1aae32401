"""Scenario files: loading, sweeps as cells, and every kind of bad file (no database needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from commandline import run_cli
from repo import REPO

from loadgen.errors import ConfigError
from loadgen.model.scenariofile import builtin_names, load, load_text

GOOD = """
name = "demo"
accounts = [10, 100]
users = [5, 20]
duration = "3s"
amount = 2
cc = "locking"
[keys]
distribution = "zipf"
zipf_s = 1.2
[transaction]
shape = "select-then-update"
[retry]
backoff = ["none", "full-jitter"]
deadline = "5s"
[load]
think_time = "10ms"
[postgres]
lock_timeout_ms = [0, 1]
"""


def test_a_good_file_becomes_the_cartesian_product_of_its_lists() -> None:
    sf = load_text(GOOD, "demo.toml")
    assert sf.name == "demo" and sf.is_sweep
    assert sf.sweep_keys == ("accounts", "users", "retry.backoff", "postgres.lock_timeout_ms")
    assert len(sf.cells) == 2 * 2 * 2 * 2
    first, last = sf.cells[0].scenario, sf.cells[-1].scenario
    assert (first.accounts, first.users, first.retry.backoff, first.lock_timeout_ms) == (10, 5, "none", None)
    assert (last.accounts, last.users, last.retry.backoff, last.lock_timeout_ms) == (100, 20, "full-jitter", 1.0)
    assert first.distribution == "zipf" and first.zipf_s == 1.2 and first.transaction == "select-then-update"
    assert first.duration_s == 3.0 and first.retry.deadline_s == 5.0 and first.think_ms == pytest.approx(10.0)
    assert first.spawn_rate == 5.0  # all users at once unless the file says otherwise
    slugs = [c.slug for c in sf.cells]
    assert len(set(slugs)) == len(slugs)
    assert sf.cells[0].label == "accounts=10 users=5 backoff=none lock_timeout_ms=0"


def test_a_file_without_lists_is_one_cell() -> None:
    sf = load_text("accounts = 50\nusers = 3\n", "one.toml")
    assert not sf.is_sweep and len(sf.cells) == 1 and sf.cells[0].scenario.accounts == 50


def test_cells_groups_add_cells_beside_the_product() -> None:
    text = "users = 10\n[[cells]]\naccounts = [10, 100]\n[[cells]]\naccounts = 1000\nusers = 1000\n"
    sf = load_text(text, "g.toml")
    assert [(c.scenario.accounts, c.scenario.users) for c in sf.cells] == [(10, 10), (100, 10), (1000, 1000)]
    assert sf.cells[2].label == "accounts=1000 users=1000"


def test_command_line_overrides_win_and_end_a_sweep() -> None:
    sf = load_text(GOOD, "demo.toml", {"accounts": 7, "retry.backoff": "exponential"})
    assert {c.scenario.accounts for c in sf.cells} == {7}
    assert {c.scenario.retry.backoff for c in sf.cells} == {"exponential"}
    assert len(sf.cells) == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("acounts = 10", "bad.toml: acounts: unknown key (did you mean accounts?)"),
        ("[keys]\nzipf = 1.1", "bad.toml: keys.zipf: unknown key"),
        ("[frobs]\nx = 1", "bad.toml: frobs: unknown key"),
        ('accounts = "ten"', "bad.toml: accounts: must be a whole number, got text 'ten'"),
        ("accounts = 10.5", "bad.toml: accounts: must be a whole number"),
        ("users = true", "bad.toml: users: must be a whole number, got a boolean"),
        ("accounts = 1", "bad.toml: accounts: must be at least 2, got 1"),
        ("accounts = [10, 1]", "bad.toml: accounts: must be at least 2, got 1"),
        ("accounts = []", "bad.toml: accounts: an empty list sweeps nothing"),
        ("accounts = [10, 10]", "bad.toml: accounts: the list repeats a value"),
        ('duration = "soon"', "bad.toml: duration: duration must be"),
        ("duration = -3", "bad.toml: duration: duration must be positive"),
        ('[keys]\ndistribution = "gauss"', "bad.toml: keys.distribution: must be one of uniform, zipf, hotspot, hotset"),
        ("[keys]\nhot_ops = 1.5", "bad.toml: keys.hot_ops: must be a share"),
        ("[transaction]\nread_mix = -0.1", "bad.toml: transaction.read_mix: must be a share from 0 to 1"),
        ('[retry]\nbackoff = "linear"', "bad.toml: retry.backoff: must be one of none, exponential, full-jitter"),
        ('name = ["a", "b"]', "bad.toml: name: must be a single value, not a list"),
        ("keys = 3", "bad.toml: keys: must be a table"),
        ("accounts = ", "bad.toml: not valid TOML"),
        ('accounts = 10\n[keys]\ndistribution = "hotset"\nhotset_k = 20', "bad.toml: hot set size must be from 2 to accounts - 1"),
        ('accounts = [5, 50]\n[keys]\ndistribution = "hotset"\nhotset_k = 8', "bad.toml: accounts=5: hot set size"),
        ("amount = 5\namount_max = 2", "bad.toml: amount max (2) is below amount (5)"),
        ("[retry]\nbase_ms = 50\ncap_ms = 10", "bad.toml: retry backoff cap"),
    ],
)
def test_bad_files_say_file_key_and_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_text(text, "bad.toml")
    assert str(e.value).startswith(message), str(e.value)


def test_a_bad_override_names_the_command_line() -> None:
    with pytest.raises(ConfigError, match=r"^command line: users: must be at least 1"):
        load_text("accounts = 10", "f.toml", {"users": 0})


def test_unknown_builtin_lists_the_builtins() -> None:
    with pytest.raises(ConfigError, match="no built-in scenario of that name.*quickstart"):
        load("no-such-scenario")


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_scenario_loads_and_validates(name: str) -> None:
    sf = load(name)
    assert sf.name == name
    assert sf.description, "a built-in says what it shows"
    assert sf.cells


def test_the_builtins_are_there() -> None:
    expected = {
        "quickstart",
        "baseline-1000x1000",
        "baseline-batches",
        "hotspot-sweep",
        "zipf-sweep",
        "backoff-compare",
        "lock-mode-compare",
    }
    assert expected <= set(builtin_names())


def test_the_top_level_scenarios_directory_matches_the_builtins() -> None:
    top = REPO / "scenarios"
    for name in builtin_names():
        copy = top / f"{name}.toml"
        assert copy.is_file(), f"scenarios/{name}.toml missing"
        assert load(str(copy)).cells == load(name).cells


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("acounts = 10\n", "acounts: unknown key"),
        ('users = "many"\n', "users: must be a whole number"),
        ("accounts = [1, 10]\n", "accounts: must be at least 2"),
    ],
)
def test_cli_bad_scenario_file_exit_2_one_line(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = tmp_path / "out"
    proc = run_cli("run", str(path), "--out", str(out), timeout=60)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and len(err.splitlines()) == 1
    assert err.startswith(f"loadgen: {path}: ") and needle in err
    assert not out.exists()  # nothing written before validation passed


@pytest.mark.slow
def test_cli_missing_file_and_bad_override(tmp_path: Path) -> None:
    proc = run_cli("run", str(tmp_path / "nope.toml"), timeout=60)
    assert proc.returncode == 2 and "cannot read scenario file" in proc.stderr
    proc = run_cli("run", "quickstart", "--backoff", "linear", timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "loadgen: argument --backoff: backoff must be one of none, exponential, full-jitter, got 'linear'"
