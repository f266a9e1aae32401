"""The report for a real small sweep on the embedded PostgreSQL: sections, numbers, the CLI, a real browser."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

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
    for sid in ("headline", "warnings", "hotspot", "heatmap", "model", "reference", "latency", "detail", "metadata"):
        assert f'id="{sid}"' in html, sid
    assert "no 1,000 accounts x 1,000 users baseline cell" in html
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


# --- a real browser -------------------------------------------------------------------------------


class Chromium:
    """Headless Chromium driven through the DevTools protocol on a pipe (fds 3 and 4): no extra library."""

    def __init__(self, exe: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="lg-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds() -> None:  # the child's fd 3 reads commands, fd 4 writes answers
            import fcntl

            a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)  # out of the way first: the pipes may be 3 or 4
            b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--disable-extensions",
                f"--user-data-dir={self.profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            close_fds=False,
            preexec_fn=fds,  # close_fds would close 3 and 4 after preexec_fn
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._id = 0
        self._buf = b""
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None, timeout: float = 30) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self._read(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            self.events.append(m)
        raise TimeoutError(method)

    def wait_event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        for e in self.events:
            if e.get("method") == method:
                return e
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self._read(deadline)
            self.events.append(m)
            if m.get("method") == method:
                return m
        raise TimeoutError(method)

    def _read(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def chromium() -> Iterator[Chromium]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    browser = Chromium(exe)
    try:
        yield browser
    finally:
        browser.close()


#: Where the screenshot is kept for a person to look at.
SCREENSHOT = Path(tempfile.gettempdir()) / "loadgen-report-screenshot.png"


def test_report_in_headless_chromium(sweep: Path, tmp_path: Path, chromium: Chromium) -> None:
    import numpy as np
    from PIL import Image

    out = tmp_path / "report.html"
    assert run_cli("report", str(sweep), "-o", str(out)).returncode == 0
    url = out.resolve().as_uri()
    target = chromium.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = chromium.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Network", "Runtime", "Log", "Page"):
        chromium.send(f"{domain}.enable", session=session)
    chromium.send(
        "Emulation.setDeviceMetricsOverride", {"width": 1200, "height": 2400, "deviceScaleFactor": 1, "mobile": False}, session=session
    )
    chromium.send("Page.navigate", {"url": url}, session=session)
    chromium.wait_event("Page.loadEventFired")
    title = chromium.send("Runtime.evaluate", {"expression": "document.title", "returnByValue": True}, session=session)["result"]["value"]
    svgs = chromium.send(
        "Runtime.evaluate", {"expression": "document.querySelectorAll('svg').length", "returnByValue": True}, session=session
    )["result"]["value"]
    shot = chromium.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
    time.sleep(0.3)
    try:  # drain late events
        chromium.send("Runtime.evaluate", {"expression": "1"}, session=session)
    except TimeoutError:
        pass

    requested = [e["params"]["request"]["url"] for e in chromium.events if e.get("method") == "Network.requestWillBeSent"]
    assert requested and all(u == url or u.startswith("data:") for u in requested), requested
    console = [e for e in chromium.events if e.get("method") in ("Runtime.consoleAPICalled", "Runtime.exceptionThrown")]
    errors = [e for e in chromium.events if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"]
    assert not console and not errors, (console, errors)
    assert title.startswith("loadgen contention report")
    assert svgs >= 5

    png = base64.b64decode(shot)
    SCREENSHOT.write_bytes(png)
    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    assert img.shape[0] >= 2000 and img.shape[1] >= 1000
    assert img.std() > 10  # not blank: text, tables and charts
    assert (img < 128).mean() > 0.01  # some dark ink on the page


_EXECUTE = """
import sys, nbformat, nbclient
src, dst = sys.argv[1], sys.argv[2]
nb = nbformat.read(src, as_version=4)
client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": sys.argv[3]}})
try:
    client.execute()
finally:
    nbformat.write(nb, dst)
"""


def test_notebook_runs_on_a_recorded_run(sweep: Path, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    root = Path(__file__).resolve().parent.parent
    path = root / "notebooks" / "contention.ipynb"
    done = tmp_path / "executed.ipynb"
    # In a process of its own: this one is gevent-patched (Locust), which Jupyter's asyncio client cannot share.
    env = dict(
        os.environ, LOADGEN_RUN=str(sweep), PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    )  # this checkout's loadgen
    r = subprocess.run(
        [sys.executable, "-c", _EXECUTE, str(path), str(done), str(path.parent)], capture_output=True, text=True, timeout=300, env=env
    )
    assert r.returncode == 0, r.stderr[-3000:]
    nb = nbformat.read(done, as_version=4)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = json.dumps(outputs)
    assert "sweep " in text and "image/svg+xml" in text
    assert "talk: model 7.0" in text
    assert "conflicts" in text  # the by-key slice
