"""Fixtures shared by the browser tests: a headless Debian chromium and a live server.

Browser tests need Debian's chromium (``apt-get install chromium fonts-wqy-microhei``) and
playwright (test extra). They skip with a message when chromium is missing, except in CI, which
sets ``GUANXI_REQUIRE_BROWSER=1`` and must run them.
"""

from __future__ import annotations

import os
import shutil
import threading

import pytest
from werkzeug.serving import make_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("GUANXI_REQUIRE_BROWSER") == "1":
            pytest.fail(f"chromium not found at {CHROMIUM} (GUANXI_REQUIRE_BROWSER=1)")
        pytest.skip("install Debian's chromium to run browser tests: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


@pytest.fixture
def live_url(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def log_in(live_url):
    """``log_in(page, email, password=...)``: fill the login form, submit, and wait for the answer.

    Waiting for the navigation matters: a locator counted right after the click can run against
    the login page that is still showing (CI failed on that once).
    """

    def log_in(page, email: str, password: str = "s3cret-pass") -> None:
        page.goto(f"{live_url}/login")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        with page.expect_navigation():
            page.click("button[type=submit]")

    return log_in


@pytest.fixture
def failing_import(monkeypatch):
    """``failing_import(call, error, method="_insert", write_first=False)``: the importer's
    ``method`` raises ``error`` on its ``call``-th call (after writing that batch when
    ``write_first``: the database failed after the statement). Returns the call counter."""
    from core import importer

    def arm(call: int, error: Exception, method: str = "_insert", write_first: bool = False):
        original = getattr(importer.Job, method)
        calls = {"n": 0}

        def flaky(self, rows):
            calls["n"] += 1
            if calls["n"] == call:
                if write_first:
                    original(self, rows)
                raise error
            return original(self, rows)

        monkeypatch.setattr(importer.Job, method, flaky)
        return calls

    return arm
