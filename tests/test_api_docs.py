"""docs/api.md's curl examples, run in order against a live server: each must succeed, and
answer JSON with the shape the document shows after it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from core import tokens
from core.models import Customer
from core.tenancy import company_scope
from core.tickets import open_ticket

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
BLOCK = re.compile(r"```(sh|json)\n(.*?)```", re.S)
#: Keys whose values the documented answer states literally (others vary: ids, times).
LITERAL = {"code", "result", "state"}


def examples() -> list[tuple[str, str | None]]:
    """``(shell command, documented JSON answer or None)`` in document order."""
    blocks = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    out: list[tuple[str, str | None]] = []
    for kind, text in blocks:
        if kind == "sh":
            out.append((text, None))
        elif out and out[-1][1] is None:
            out[-1] = (out[-1][0], text)
    return out


def shape_errors(documented: object, actual: object, where: str = "") -> list[str]:
    """How ``actual`` misses the shape of ``documented`` (keys present; literal values equal)."""
    if isinstance(documented, dict):
        if not isinstance(actual, dict):
            return [f"{where or 'answer'}: expected an object, got {actual!r:.80}"]
        problems = []
        for key, value in documented.items():
            if key == "...":
                continue
            if key not in actual:
                problems.append(f"{where}.{key} missing")
            elif key in LITERAL and isinstance(value, str):
                if actual[key] != value:
                    problems.append(f"{where}.{key} is {actual[key]!r}, documented {value!r}")
            else:
                problems += shape_errors(value, actual[key], f"{where}.{key}")
        return problems
    if isinstance(documented, list) and documented and isinstance(documented[0], dict):
        if not isinstance(actual, list) or not actual:
            return [f"{where}: expected a non-empty list, got {actual!r:.80}"]
        return shape_errors(documented[0], actual[0], f"{where}[0]")
    return []


def test_the_document_has_examples_with_answers():
    found = examples()
    assert len(found) >= 8
    assert sum(1 for _cmd, answer in found if answer) >= 6


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_every_curl_example_in_the_api_document_works(app, db, company, make_user, live_url):
    co = company(code="docs")
    admin = make_user("admin", co)
    _row, secret = tokens.issue(admin, co.id, "docs")
    with company_scope(co.id):
        customer = Customer(name="文档客户", owner_id=admin.id)
        db.session.add(customer)
        db.session.flush()
        ticket = open_ticket(customer_id=customer.id, subject="空调不制冷", user_id=admin.id)
        db.session.commit()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GUANXI": live_url,
        "TOKEN": secret,
        "CUSTOMER_ID": str(customer.id),
        "TICKET_ID": str(ticket.id),
    }
    for command, documented in examples():
        done = subprocess.run(
            ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        if " -i " in command:
            assert re.search(r"^etag: ", done.stdout, re.I | re.M), done.stdout[:500]
            continue
        answer = json.loads(done.stdout)
        expected = json.loads(documented) if documented else {}
        if "error" not in expected:
            assert "error" not in answer, f"{command}\n{answer}"
        problems = shape_errors(expected, answer)
        assert not problems, f"{command}\n" + "\n".join(problems) + f"\n{answer}"
