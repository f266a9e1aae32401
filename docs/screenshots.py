"""Regenerate the README's pictures from a real short run: ``python docs/screenshots.py``.

- docs/report-hotspot.png: the report's hot-spot section of a real ``loadgen run``
  quickstart on the embedded PostgreSQL (the talk's load over 100, 1,000 and 10,000
  accounts, the 1,000-account cell the baseline, then 50 and 1,000 closed-loop users);
  its closing table is printed, for the README;
- docs/ui-contention-tab.png: Locust's web UI on its Contention tab, a test started
  with the UI's own form and Start button and left to run for a few seconds.

Headless Chromium through Playwright, launched as the browser tests launch it
(tests/chromium.py: Debian's chromium, ``apt-get install chromium``). The images are
reduced to 256 colours to keep the repository small. About two minutes on two cores.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from chromium import launch_options  # noqa: E402  - the browser tests' launch settings
from PIL import Image  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

DOCS = ROOT / "docs"


def _loadgen(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    r = subprocess.run([sys.executable, "-m", "loadgen.cli", *args], capture_output=True, text=True, env=env, **kw)  # type: ignore[call-overload]
    if r.returncode != 0:
        sys.exit(f"loadgen {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return r


def _save(png: bytes, path: Path) -> None:
    """A palette PNG: screenshots of flat pages lose nothing visible at 256 colours."""
    img = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    img.save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {img.width}x{img.height}, {path.stat().st_size / 1024:.0f} KiB")


def _quickstart(work: Path) -> Path:
    """The quickstart as a new user runs it; its table (the README shows it) printed with the load average."""
    r = _loadgen("run", "quickstart", "--out", str(work / "runs"), "-q", timeout=900)
    table = r.stdout[r.stdout.index("  cell ") :] if "  cell " in r.stdout else r.stdout
    print(table)
    print(f"load average after: {os.getloadavg()}")
    (sweep,) = (work / "runs").glob("sweep-quickstart-*")
    return sweep


def report_hotspot(browser: object, work: Path, seconds: int) -> None:
    sweep = _quickstart(work)
    page = browser.new_page(viewport={"width": 1100, "height": 900})  # type: ignore[attr-defined]
    page.goto((sweep / "report.html").as_uri())
    section = page.locator("#hotspot")
    expect(section.locator("svg").first).to_be_visible()
    _save(section.screenshot(), DOCS / "report-hotspot.png")
    page.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ui_contention_tab(browser: object, work: Path, seconds: int) -> None:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    log = (work / "ui.log").open("wb")
    ui = subprocess.Popen(
        [sys.executable, "-m", "loadgen.cli", "ui", "--web-port", str(port), "--out", str(work / "ui-runs")],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/contention/data", timeout=5).read()
                break
            except OSError:
                if ui.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"loadgen ui did not come up:\n{(work / 'ui.log').read_text()[-2000:]}")
                time.sleep(0.3)
        page = browser.new_page(viewport={"width": 1200, "height": 760})  # type: ignore[attr-defined]
        page.goto(base + "/")
        page.locator("input[name=userCount]").fill("20")
        page.locator("input[name=spawnRate]").fill("20")
        page.locator("input[name=accounts]").fill("100")  # loadgen's fields are open already
        page.get_by_role("button", name="Start").click()
        expect(page.get_by_role("button", name="Stop")).to_be_visible()
        time.sleep(seconds)
        page.get_by_role("tab", name="Contention").click()
        expect(page.get_by_role("row").filter(has_text="conflict rate")).to_contain_text("%")
        time.sleep(2.5)  # one more poll, so the "now" rows are filled
        _save(page.screenshot(), DOCS / "ui-contention-tab.png")
        page.get_by_role("button", name="Stop").click()
        page.close()
    finally:
        ui.terminate()
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            ui.kill()
        log.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--seconds", type=int, default=6, help="length of the web UI's test (default 6)")
    p.add_argument("--only", choices=["report", "ui"], help="regenerate one picture")
    args = p.parse_args()
    try:
        options = launch_options()
    except RuntimeError as e:
        sys.exit(str(e))
    with tempfile.TemporaryDirectory(prefix="lg-shots-") as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(**options)
        try:
            if args.only in (None, "report"):
                report_hotspot(browser, Path(tmp), args.seconds)
            if args.only in (None, "ui"):
                ui_contention_tab(browser, Path(tmp), args.seconds)
        finally:
            browser.close()


if __name__ == "__main__":
    main()
