"""`guanxi serve` as a user runs it: gunicorn serving requests that share nothing.

Regression: serve once ran gunicorn inside the CLI's application context, so every request of a
worker shared one ``g`` -- a visitor with no cookie saw the previous visitor logged in.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "core.cli", *args], env=env, check=True, capture_output=True
    )


@pytest.fixture
def server(tmp_path):
    env = {
        **os.environ,
        "GUANXI_INSTANCE_PATH": str(tmp_path),
        "GUANXI_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "PYTHONPATH": str(ROOT),
    }
    _cli(env, "db", "upgrade")
    _cli(env, "companies", "create", "acme", "康泰医药")
    _cli(env, "users", "create", "--email", "li@example.com", "--name", "李经理",
         "--password", "s3cret-pass", "--company", "acme", "--role", "manager")  # fmt: skip
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/login", timeout=2)
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("guanxi serve did not answer within 20 s")
    yield base
    proc.terminate()
    proc.wait(timeout=10)


def test_a_visitor_without_a_cookie_never_sees_the_previous_user(server):
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = browser.open(server + "/login").read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    form = {"csrf_token": token, "email": "li@example.com", "password": "s3cret-pass"}
    landed = browser.open(server + "/login", urllib.parse.urlencode(form).encode())
    assert "李经理" in landed.read().decode()

    for _ in range(3):
        anonymous = urllib.request.urlopen(server + "/login").read().decode()
        assert "李经理" not in anonymous
        assert 'name="password"' in anonymous
