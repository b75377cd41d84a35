"""Headless Chromium for the UI tests: Debian's `chromium` (installed by `make install`), driven
by Playwright, which is pointed at it because its own browser download cannot be fetched here."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

import pytest


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("the UI tests need Debian's chromium: `make install` installs it (apt-get install chromium)")
    return path


@contextlib.contextmanager
def browser_page() -> Iterator[object]:
    """A fresh page of a headless Chromium, closed afterwards (a playwright.sync_api.Page)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()
