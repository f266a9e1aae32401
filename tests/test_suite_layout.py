"""The test suite's own layout: folders mirror the package, test modules stand alone, and plain
``pytest`` runs everything (``-m "not slow"`` is a choice made on the command line, never in the
configuration CI reads).

tests/<area>/test_*.py test ``loadgen/<area>/``; tests/test_*.py test the package as a whole
(layout, wheel, dependencies' private names, this file) or one of its top-level modules. What tests share lives at tests/'s root
as helper modules (commandline.py, offline_aws.py, roles.py, repo.py, chromium.py) or fixtures
(conftest.py), never in a test module another one imports. Needs no database.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from repo import PACKAGE, REPO

TESTS = REPO / "tests"


def _test_modules() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def _test_module_imports(tree: ast.AST) -> list[str]:
    """The test modules (and conftest) a module imports: shared code belongs in a helper module or a fixture."""
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found += [n for n in names if n.split(".")[-1].startswith("test_") or n.split(".")[-1] == "conftest"]
    return found


def test_every_test_folder_is_named_for_a_subpackage() -> None:
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    assert folders <= subpackages, f"test folders with no loadgen subpackage of that name: {sorted(folders - subpackages)}"


#: Tests of the package as a whole, at tests/'s root beside the tests of loadgen's own top-level modules (test_errors.py).
WHOLE_PACKAGE_TESTS = {"test_layout.py", "test_private_api.py", "test_suite_layout.py", "test_wheel.py"}


def test_tests_of_an_area_sit_in_its_folder() -> None:
    top_level = {f"test_{p.stem}.py" for p in PACKAGE.glob("*.py")}
    flat = sorted(p.name for p in TESTS.glob("test_*.py") if p.name not in WHOLE_PACKAGE_TESTS | top_level)
    assert not flat, f"move these into the folder of the subpackage they test (tests/<area>/), or name them here: {flat}"


def test_folders_hold_test_modules_only() -> None:
    """Helpers sit at tests/'s root, where conftest.py puts them on sys.path for every folder."""
    stray = [str(p.relative_to(TESTS)) for p in TESTS.glob("*/*.py") if not p.name.startswith("test_")]
    assert not stray, f"move these helpers to tests/'s root: {stray}"


def test_no_test_module_imports_another() -> None:
    wrong = {}
    for path in _test_modules():
        imported = _test_module_imports(ast.parse(path.read_text(), str(path)))
        if imported:
            wrong[str(path.relative_to(TESTS))] = imported
    assert not wrong, f"share through a helper module at tests/'s root or a fixture in conftest.py: {wrong}"


def test_the_checker_sees_a_test_module_imported() -> None:
    assert _test_module_imports(ast.parse("from test_dsql_target import ENDPOINT\nimport conftest")) == ["test_dsql_target", "conftest"]
    assert _test_module_imports(ast.parse("def f():\n    from tests.engine.test_run import x")) == ["tests.engine.test_run"]
    assert _test_module_imports(ast.parse("from commandline import run_cli\nfrom loadgen.results import metrics")) == []


def test_test_module_names_are_unique() -> None:
    """pytest's default import mode puts each folder on sys.path: two test_x.py would be one module."""
    seen: dict[str, list[str]] = {}
    for path in _test_modules():
        seen.setdefault(path.name, []).append(str(path.relative_to(TESTS)))
    assert not {name: paths for name, paths in seen.items() if len(paths) > 1}


def test_plain_pytest_runs_the_slow_tests_too() -> None:
    """CI runs plain ``pytest``: the configuration must not deselect the slow tests, and an unknown marker is an error."""
    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "slow" not in options["addopts"]
    assert "--strict-markers" in options["addopts"]
    assert any(m.startswith("slow:") for m in options["markers"])


#: Where the repository names a test file: docs, configuration, code comments and docstrings.
NAMED_IN = (
    "README.md",
    "BENCHMARKS.md",
    "pyproject.toml",
    "scenarios/README.md",
    "docs/*.md",
    "docs/*.py",
    "benchmarks/*.py",
    "loadgen/**/*.py",
    "tests/**/*.py",
)


def _named_test_files(text: str) -> set[str]:
    return set(re.findall(r"\btests/[\w/]+\.py\b", text))


def test_every_test_file_the_repository_names_exists() -> None:
    """A test moved or renamed takes its mentions with it (the docs point readers at the test that proves a claim)."""
    missing = []
    for pattern in NAMED_IN:
        for path in sorted(REPO.glob(pattern)):
            missing += [
                f"{path.relative_to(REPO)}: {name}" for name in sorted(_named_test_files(path.read_text())) if not (REPO / name).is_file()
            ]
    assert not missing, missing


def test_the_checker_finds_named_test_files() -> None:
    assert _named_test_files("see `tests/db/test_fcw.py`, tests/chromium.py and tests/ (all)") == {
        "tests/db/test_fcw.py",
        "tests/chromium.py",
    }
