"""A headless Chromium (Playwright) for the browser tests, with console errors and requests
recorded on each page."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

import pytest

#: The Chromium to drive: $CNNKIT_CHROMIUM, Debian's, or the first on PATH.
CHROMIUM = next((path for path in (os.environ.get("CNNKIT_CHROMIUM"), "/usr/bin/chromium",
                                   shutil.which("chromium")) if path and os.path.exists(path)),
                None)

#: Skips a module's tests where no Chromium is installed.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium executable (apt-get install chromium)")


@contextlib.contextmanager
def open_page(url: str, *, height: int = 900) -> Iterator[object]:
    """A page at ``url``; its ``errors`` and ``requests`` lists fill as it runs."""
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1280, "height": height})
        tab.errors, tab.requests = [], []
        tab.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda error: tab.errors.append(str(error)))
        tab.on("request", lambda request: tab.requests.append(request.url))
        try:
            tab.goto(url)
            yield tab
        finally:
            browser.close()
