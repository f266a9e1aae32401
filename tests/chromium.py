"""Headless Chromium through Playwright: Debian's build, for the browser tests and docs/screenshots.py.

Playwright's own browser download is not reachable from CI, so every launch points
``executable_path`` at Debian's ``/usr/bin/chromium`` (or ``$LOADGEN_CHROMIUM``).
Without it the browser tests fail, naming the install step, rather than skip: a
green run must mean the pages were looked at.

Registered as a pytest plugin by conftest.py; it overrides pytest-playwright's
``browser_type_launch_args`` and adds ``watched``, a page whose console, errors and
requests are recorded for the test to assert on.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import expect

__all__ = ["CHROMIUM_FLAGS", "INSTALL_STEP", "PageWatch", "chromium_path", "launch_options"]

#: What a person (or CI, as root) types to get the browser.
INSTALL_STEP = "apt-get install chromium"

#: Root needs --no-sandbox; the rest keep a headless run quiet and off the network.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


def chromium_path() -> str | None:
    """Debian's chromium, or the one ``$LOADGEN_CHROMIUM`` names; None when there is none."""
    wanted = os.environ.get("LOADGEN_CHROMIUM")
    if wanted:
        return wanted if os.access(wanted, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch_options() -> dict[str, Any]:
    """Keyword arguments for ``playwright.chromium.launch``; raises RuntimeError naming the install step."""
    exe = chromium_path()
    if exe is None:
        raise RuntimeError(f"the browser tests need Debian's chromium, and it is not installed: {INSTALL_STEP}")
    return {"executable_path": exe, "args": list(CHROMIUM_FLAGS), "headless": True}


@dataclass
class PageWatch:
    """Everything a page said or fetched while a test looked at it."""

    page: Any
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    bad_responses: list[str] = field(default_factory=list)

    @classmethod
    def on(cls, page: Any) -> PageWatch:
        watch = cls(page)
        page.on("request", lambda r: watch.requests.append(r.url))
        page.on("requestfailed", lambda r: watch.failed_requests.append(f"{r.url}: {r.failure}"))
        page.on("response", lambda r: watch.bad_responses.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("console", lambda m: watch.console_errors.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: watch.page_errors.append(str(e)))
        return watch

    def assert_clean(self, *allowed_prefixes: str) -> None:
        """No console error or warning, no uncaught exception, no failed request, nothing fetched from elsewhere."""
        assert not self.page_errors, self.page_errors
        assert not self.bad_responses, self.bad_responses
        assert not self.console_errors, self.console_errors
        assert not self.failed_requests, self.failed_requests
        outside = [u for u in self.requests if not u.startswith(("data:", *allowed_prefixes))]
        assert not outside, outside


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    """pytest-playwright's launch options: Debian's chromium, or a failure naming the install step."""
    try:
        return launch_options()
    except RuntimeError as e:
        missing = str(e)
    pytest.fail(missing, pytrace=False)


@pytest.fixture
def watched(page: Any) -> Iterator[PageWatch]:
    """pytest-playwright's ``page``, with its console, errors and requests recorded."""
    # Generous: on a busy shared machine a start (seeding the bank) or a stop takes seconds.
    page.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)
    yield PageWatch.on(page)
