"""The wheel, as a user installs it: built from a clean copy of the sources, installed into a
fresh virtual environment, and run from there (scenario files and the web UI's page included).

The fresh environment gets loadgen only from the wheel. Its dependencies come from the
test's own environment through a .pth file listing a directory of links (everything but
loadgen itself), so pip resolves the wheel's declared requirements against them with
``--no-index``: a dependency missing from pyproject.toml fails here, without a download.
Building fetches the build backend (setuptools) from the package index, as pip does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from repo import REPO

pytestmark = pytest.mark.slow


def _sources(dest: Path) -> Path:
    """The files git knows or would add (or, outside a checkout, the tree minus build and run debris)."""
    try:
        files = (
            subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, check=True
            )
            .stdout.decode()
            .split("\0")
        )
    except (OSError, subprocess.CalledProcessError):
        files = []
    if files and files != [""]:
        for name in filter(None, files):
            src = REPO / name
            if src.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)
    else:
        ignore = shutil.ignore_patterns(".git", ".ci-venv", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", "reports")
        shutil.copytree(REPO, dest, ignore=ignore, dirs_exist_ok=True)
    return dest


def _run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)} -> {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the freshly built wheel installed; its bin directory."""
    base = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    src = _sources(base / "src")
    dist = base / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)], env, base, timeout=600)
    (wheel,) = dist.glob("loadgen-*.whl")

    # Links to the dependencies this environment has, loadgen itself left out.
    deps = base / "deps"
    deps.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if "loadgen" in entry.name.lower():
            continue
        (deps / entry.name).symlink_to(entry)
    fresh = base / "venv"
    venv.EnvBuilder(with_pip=True, symlinks=True).create(fresh)
    vpython = fresh / "bin" / "python"
    vsite = Path(_run([str(vpython), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env, base).stdout.strip())
    (vsite / "_loadgen_test_deps.pth").write_text(f"{deps}\n")
    _run([str(vpython), "-m", "pip", "install", "--no-index", "-q", str(wheel)], env, base)
    _run([str(vpython), "-m", "pip", "check"], env, base)
    return fresh / "bin"


def _env(loadgen_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["LOADGEN_HOME"] = str(loadgen_home)
    return env


def test_the_wheel_ships_its_files(installed: Path, tmp_path: Path, loadgen_home: Path) -> None:
    code = (
        "import json, loadgen, importlib.resources as r\n"
        "root = r.files('loadgen')\n"
        "print(json.dumps({'file': loadgen.__file__,"
        " 'scenarios': sorted(p.name for p in (root / 'scenarios').iterdir() if p.name.endswith('.toml')),"
        " 'static': sorted(p.name for p in (root / 'ui' / 'static').iterdir()),"
        " 'locustfile': (root / 'ui' / 'locustfile.py').is_file(), 'typed': (root / 'py.typed').is_file()}))"
    )
    r = _run([str(installed / "python"), "-c", code], _env(loadgen_home), tmp_path)
    found = json.loads(r.stdout)
    assert found["file"].startswith(str(installed.parent)), found["file"]  # from the wheel, not this checkout
    assert found["scenarios"] == sorted(p.name for p in (REPO / "loadgen" / "scenarios").glob("*.toml"))
    assert "contention.html" in found["static"]
    assert found["locustfile"] and found["typed"]


def test_the_console_script_runs_a_built_in_scenario(installed: Path, tmp_path: Path, embedded: object, loadgen_home: Path) -> None:
    env = _env(loadgen_home)
    r = _run([str(installed / "loadgen"), "run", "--help"], env, tmp_path)
    assert "--csv PREFIX" in r.stdout and "--accounts" in r.stdout
    out = tmp_path / "runs"
    r = _run(
        [str(installed / "loadgen"), "run", "backoff-compare", "--users", "10", "--duration", "2", "--out", str(out), "-q"],
        env,
        tmp_path,
        timeout=300,
    )
    (sweep,) = out.glob("sweep-backoff-compare-*")
    index = json.loads((sweep / "sweep.json").read_text())
    assert [c["status"] for c in index["cells"]] == ["done"] * 3
    assert (sweep / "report.html").is_file()
    assert "money_conserved" not in r.stderr and "Traceback" not in r.stderr
