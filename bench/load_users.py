"""The virtual users of bench/load.py: one thread each, a stdlib HTTP client with its own
cookies, logged in through the real login form, mixing reads and writes until a deadline.

Reads: the customer list, a search, a customer's page, the ticket list, a ticket's page, and
the JSON API's customer list, customer and ticket list (bearer token). Writes: an interaction,
a customer and a ticket through the web forms (the form page is read, its CSRF token and
default values posted back) and an interaction and a customer change through the API.

An **error** is any answer other than 2xx/3xx, a redirect to the login page, a write that did
not land where it should (a form answered 200: it was refused), a connection error or a
timeout.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

#: Actions and their weights within reads and within writes (load.py's ``--writes`` sets the
#: share of writes among actions: 0.2 by default).
READS = {
    "customer list": 14,
    "customer search": 10,
    "customer page": 16,
    "ticket list": 10,
    "ticket page": 6,
    "api customer list": 10,
    "api customer": 8,
    "api ticket list": 6,
}
WRITES = {
    "web: log interaction": 6,
    "web: new customer": 4,
    "web: new ticket": 3,
    "api: log interaction": 4,
    "api: change customer": 3,
}
TIMEOUT = 60.0


@dataclass
class Target:
    """What the users work on: the server, the logins, their tokens and ids to visit."""

    host: str
    port: int
    logins: list[tuple[str, str, str]]  # (e-mail, password, API token)
    customer_ids: list[int]
    ticket_ids: list[int]
    search_terms: list[str]


@dataclass
class Stats:
    """Latencies (seconds) and errors per kind of request."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)

    def add(self, kind: str, seconds: float, error: str | None) -> None:
        self.latencies.setdefault(kind, []).append(seconds)
        if error:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            if len(self.samples) < 20:
                self.samples.append(f"{kind}: {error}")

    def merge(self, other: Stats) -> None:
        for kind, values in other.latencies.items():
            self.latencies.setdefault(kind, []).extend(values)
        for kind, count in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + count
        self.samples.extend(other.samples[: max(0, 20 - len(self.samples))])


class Forms(HTMLParser):
    """The forms of a page: ``action`` → field values as the browser would post them."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self._fields: dict[str, str] | None = None
        self._select: str | None = None
        self._first_option: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._fields = {}
            self.forms.append((a.get("action", ""), self._fields))
        elif self._fields is None or not a.get("name") and tag != "option":
            return
        elif tag == "input" and a.get("type") not in ("submit", "button", "file", "image"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self._fields[a["name"]] = a.get("value", "")
        elif tag == "select":
            self._select, self._first_option = a["name"], None
        elif tag == "option" and self._select:
            value = a.get("value", "")
            if self._first_option is None:
                self._first_option = value
                self._fields[self._select] = value
            if "selected" in a:
                self._fields[self._select] = value
        elif tag == "textarea":
            self._textarea = a["name"]
            self._fields[a["name"]] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._fields = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea and self._fields is not None:
            self._fields[self._textarea] += data


def form_of(page: bytes, action_part: str) -> dict[str, str]:
    """The fields of the first form whose action contains ``action_part`` (or has none)."""
    parser = Forms()
    parser.feed(page.decode("utf-8", "replace"))
    for action, fields in parser.forms:
        if "csrf_token" in fields and (action_part in action or not action):
            return dict(fields)
    raise LookupError(f"no form posting to {action_part!r} on the page")


class User(threading.Thread):
    """One virtual user: logs in, then runs weighted actions until ``deadline``."""

    def __init__(
        self, number: int, target: Target, deadline: float, seed: int, writes: float = 0.2
    ) -> None:
        super().__init__(name=f"user-{number}", daemon=True)
        self.number = number
        self.target = target
        self.deadline = deadline
        self.rng = random.Random(seed * 1000 + number)
        self.email, self.password, self.token = target.logins[number % len(target.logins)]
        self.cookies: dict[str, str] = {}
        self.conn: http.client.HTTPConnection | None = None
        self.stats = Stats()
        self.actions = list(READS) + list(WRITES)
        # ``writes`` of the actions are writes, spread over them by their weights.
        read_sum, write_sum = sum(READS.values()), sum(WRITES.values())
        self.weights = [(1 - writes) * w / read_sum for w in READS.values()] + [
            writes * w / write_sum for w in WRITES.values()
        ]

    # -- HTTP ----------------------------------------------------------------------------------

    def request(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        payload: Any = None,
        api: bool = False,
        expect: tuple[int, ...] = (200,),
        location: str | None = None,
    ) -> tuple[int, bytes, str]:
        """Send one request, time it and record it under ``kind``; ``(status, body,
        Location)``, status 0 on a connection error."""
        headers = {"User-Agent": "guanxi-bench-load"}
        body = None
        if api:
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        status, data, where, error = 0, b"", "", None
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    self.target.host, self.target.port, timeout=TIMEOUT
                )
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
            status = response.status
            where = response.getheader("Location") or ""
            for raw in response.headers.get_all("Set-Cookie") or []:
                name, _sep, rest = raw.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
            if response.will_close:
                self.conn.close()
                self.conn = None
        except (OSError, http.client.HTTPException) as exc:
            error = f"{method} {path}: {type(exc).__name__}: {exc}"
            if self.conn is not None:
                self.conn.close()
            self.conn = None
        elapsed = time.perf_counter() - started
        if error is None and status not in expect:
            error = f"{method} {path}: {status} {data[:160]!r}"
        elif error is None and "/login" in where and "/login" not in path:
            error = f"{method} {path}: redirected to the login page"
        elif error is None and location and location not in where:
            error = f"{method} {path}: went to {where!r}, not {location!r}"
        self.stats.add(kind, elapsed, error)
        return status, data, where

    # -- actions -------------------------------------------------------------------------------

    def login(self) -> bool:
        status, page, _ = self.request("login", "GET", "/login")
        if status != 200:
            return False
        fields = form_of(page, "login")
        fields.update(email=self.email, password=self.password)
        status, _, _ = self.request(
            "login", "POST", "/login", form=fields, expect=(302,), location="/dashboard"
        )
        return status == 302

    def customer(self) -> int:
        return self.rng.choice(self.target.customer_ids)

    def run(self) -> None:
        if not self.login():
            return
        while time.monotonic() < self.deadline:
            action = self.rng.choices(self.actions, self.weights)[0]
            getattr(self, "do_" + action.replace(":", "").replace(" ", "_"))(action)

    def do_customer_list(self, kind: str) -> None:
        self.request(kind, "GET", "/customers/")

    def do_customer_search(self, kind: str) -> None:
        term = self.rng.choice(self.target.search_terms)
        self.request(kind, "GET", "/customers/?" + urlencode({"q": term}))

    def do_customer_page(self, kind: str) -> None:
        self.request(kind, "GET", f"/customers/{self.customer()}")

    def do_ticket_list(self, kind: str) -> None:
        self.request(kind, "GET", "/tickets/")

    def do_ticket_page(self, kind: str) -> None:
        self.request(kind, "GET", f"/tickets/{self.rng.choice(self.target.ticket_ids)}")

    def do_api_customer_list(self, kind: str) -> None:
        self.request(kind, "GET", "/api/v1/customers?limit=20", api=True)

    def do_api_customer(self, kind: str) -> None:
        self.request(kind, "GET", f"/api/v1/customers/{self.customer()}", api=True)

    def do_api_ticket_list(self, kind: str) -> None:
        self.request(kind, "GET", "/api/v1/tickets?limit=20", api=True)

    def _post_form(self, kind: str, page: str, values: dict[str, str], lands: str) -> None:
        """Read the form at ``page`` (a "form page" read), post it back with ``values``."""
        status, html, _ = self.request("form page", "GET", page)
        if status != 200:
            return
        fields = form_of(html, page.split("?", 1)[0])
        fields.update(values)
        self.request(kind, "POST", page, form=fields, expect=(302,), location=lands)

    def do_web_log_interaction(self, kind: str) -> None:
        customer = self.customer()
        values = {"purpose": f"压测回访 {self.number}", "result": "客户满意，无新需求"}
        page = f"/interactions/new?customer_id={customer}"
        self._post_form(kind, page, values, f"/customers/{customer}")

    def do_web_new_customer(self, kind: str) -> None:
        n = self.rng.randrange(10**8)
        values = {"name": f"压测客户{self.number}-{n}", "phone": f"139{n:08d}", "tags": ""}
        self._post_form(kind, "/customers/new", values, "/customers/")

    def do_web_new_ticket(self, kind: str) -> None:
        customer = self.customer()
        values = {"customer_id": str(customer), "subject": f"压测工单 {self.number}"}
        self._post_form(kind, f"/tickets/new?customer_id={customer}", values, "/tickets/")

    def do_api_log_interaction(self, kind: str) -> None:
        payload = {
            "customer_id": self.customer(),
            "kind": "call",
            "occurred_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "purpose": f"压测 API {self.number}",
        }
        self.request(kind, "POST", "/api/v1/interactions", payload=payload, api=True, expect=(201,))

    def do_api_change_customer(self, kind: str) -> None:
        payload = {"notes": f"压测修改 {self.number} {time.time():.3f}"}
        path = f"/api/v1/customers/{self.customer()}"
        self.request(kind, "PATCH", path, payload=payload, api=True)


class BaselineUser(User):
    """A user of the baseline server: ``GET /`` until the deadline, nothing else."""

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            self.request("baseline", "GET", "/")
