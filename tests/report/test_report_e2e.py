"""The report for a real small sweep on the embedded PostgreSQL: sections, numbers, the CLI, a real browser."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from chromium import PageWatch
from commandline import run_cli
from repo import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sweep(embedded: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short cells, 10 and 1,000 accounts x 20 users, written as runs under one directory."""
    out = tmp_path_factory.mktemp("sweep")
    for accounts in ("10", "1000"):
        r = run_cli("run", "--accounts", accounts, "--users", "20", "--duration", "2", "--seed", "7", "--out", str(out), "-q")
        assert r.returncode == 0, r.stderr
        assert "report            " in r.stdout, r.stdout
    return out


def _runs(sweep: Path) -> list[tuple[Path, dict[str, Any]]]:
    dirs = sorted(p for p in sweep.iterdir() if (p / "run.json").is_file())
    return [(d, json.loads((d / "run.json").read_text())) for d in dirs]


def test_run_writes_its_report(sweep: Path) -> None:
    for d, meta in _runs(sweep):
        html = (d / "report.html").read_text()
        rate = meta["summary"]["conflict_rate"]
        assert f"{rate:.2%}" in html  # the same number as the run's own summary
        assert f"{meta['summary']['attempts']:,}" in html
        assert 0 < meta["client"]["cpu_utilization"] <= 1.5


def test_sweep_report_has_every_section_and_the_numbers(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    r = run_cli("report", str(sweep), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout
    html = out.read_text()
    for sid in ("headline", "warnings", "hotspot", "heatmap", "model", "reference", "latency", "failures", "detail", "metadata"):
        assert f'id="{sid}"' in html, sid
    # Failures by step: the hot cell's failed attempts, all at commit (cc occ), as attempts.parquet has them.
    import pyarrow.parquet as pq

    hot = next(d for d, meta in _runs(sweep) if meta["scenario"]["accounts"] == 10)
    steps = pq.read_table(hot / "attempts.parquet", columns=["outcome", "failed_at"]).to_pandas()
    failed = steps[steps["outcome"] != "committed"]
    assert len(failed) > 0 and set(failed["failed_at"]) == {"commit"}
    assert f"{len(failed):,} (100.0%)" in html
    assert "hold no cell with the talk" in html  # so ratios are to the published figure
    assert "6.56%" in html and "riv25-codetalk" in html
    runs = _runs(sweep)
    for _d, meta in runs:
        s = meta["summary"]
        assert f"{s['conflict_rate']:.2%}" in html
        assert f"{s['commits']:,}" in html
    by_accounts = {m["scenario"]["accounts"]: m["summary"]["conflict_rate"] for _d, m in runs}
    assert by_accounts[10] > by_accounts[1000]
    # Self-contained: no script, no external resource of any kind.
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", html)
    assert "url(http" not in html and "@import" not in html


def test_compare_states_differences(sweep: Path, tmp_path: Path) -> None:
    (a, _), (b, _) = _runs(sweep)
    out = tmp_path / "c.html"
    r = run_cli("report", "--compare", str(a), str(b), "-o", str(out))
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    assert 'id="compare"' in html and 'id="a-headline"' in html and 'id="b-headline"' in html
    assert "The conflict rate is" in html and "x in B" in html
    r = run_cli("report", "--compare", str(a))
    assert r.returncode == 2 and "exactly two" in r.stderr and "Traceback" not in r.stderr


def test_bad_path_is_one_line_exit_2(tmp_path: Path) -> None:
    r = run_cli("report", str(tmp_path / "nope"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no such run or sweep directory" in r.stderr


# --- a real browser (Playwright, Debian's chromium: tests/chromium.py) ------------------------------

#: Where the screenshot is kept for a person to look at.
SCREENSHOT = Path(tempfile.gettempdir()) / "loadgen-report-screenshot.png"


def test_report_in_headless_chromium(sweep: Path, tmp_path: Path, watched: PageWatch) -> None:
    import numpy as np
    from PIL import Image

    out = tmp_path / "report.html"
    assert run_cli("report", str(sweep), "-o", str(out)).returncode == 0
    url = out.resolve().as_uri()
    page = watched.page
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto(url, wait_until="load")
    assert page.title().startswith("loadgen contention report")
    # The charts are drawn: every section's SVG has a real size on the page.
    assert page.locator("svg").count() >= 5
    for section in ("hotspot", "heatmap", "latency"):
        box = page.locator(f"#{section} svg").first.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100, (section, box)
    assert page.locator("#hotspot").get_by_text("conflict", exact=False).count() > 0
    assert page.locator("#failures th", has_text="commit").first.is_visible()
    watched.assert_clean(url)  # self-contained: the file itself and data: URIs, nothing else

    png = page.screenshot(full_page=True)
    SCREENSHOT.write_bytes(png)
    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    assert img.shape[0] >= 2000 and img.shape[1] >= 1000
    assert img.std() > 10  # not blank: text, tables and charts
    assert (img < 128).mean() > 0.01  # some dark ink on the page


NOTEBOOK = REPO / "notebooks" / "contention.ipynb"
SAMPLE = REPO / "notebooks" / "sample-quickstart"


def _execute(env_run: Path, done: Path) -> subprocess.CompletedProcess[str]:
    # In a process of its own: this one is gevent-patched (Locust), which Jupyter's asyncio client cannot share.
    env = dict(os.environ, LOADGEN_RUN=str(env_run))
    script = REPO / "notebooks" / "execute.py"
    return subprocess.run([sys.executable, str(script), str(NOTEBOOK), str(done)], capture_output=True, text=True, timeout=300, env=env)


def _outputs(nb: Any) -> list[dict[str, Any]]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def test_notebook_runs_on_a_recorded_run(sweep: Path, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    done = tmp_path / "executed.ipynb"
    r = _execute(sweep, done)
    assert r.returncode == 0, r.stderr[-3000:]
    outputs = _outputs(nbformat.read(done, as_version=4))
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = json.dumps(outputs)
    assert f"sweep {sweep.name}" in text and "image/png" in text  # PNG: GitHub's notebook view shows no SVG
    assert "talk: model 7.0" in text
    assert "conflicts" in text  # the by-key slice


def test_the_committed_notebook_reads_on_its_own() -> None:
    """Committed executed against the sample shipped beside it, so GitHub shows its tables and charts."""
    nbformat = pytest.importorskip("nbformat")
    size = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert 0 < size < 3 * 2**20, size  # a few MB at most
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "commit the notebook executed: python notebooks/execute.py"
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3
    text = json.dumps(outputs)
    assert "sweep sample-quickstart: 4 run(s)" in text
    # Its tables are the sample's numbers: every cell's attempt count appears.
    for run_json in SAMPLE.glob("*/run.json"):
        attempts = json.loads(run_json.read_text())["summary"]["attempts"]
        assert str(attempts) in text, (run_json.parent.name, attempts)
