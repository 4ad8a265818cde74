"""The customer list: keyset pages, a capped count, and queries that do not grow with the page."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from core import fields
from core.models import Customer
from core.plugins import current
from core.tenancy import company_scope


def add_customers(db, company, n, start=0):
    with company_scope(company.id):
        rows = [Customer(name=f"客户{start + i:04d}") for i in range(n)]
        db.session.add_all(rows)
        db.session.flush()
        declared = current().registry.fields_for("customer", ["sales"])
        for row in rows:
            fields.save(declared, row.id, {"sales__share_of_wallet": 50})
        db.session.commit()


class QueryCounter:
    def __init__(self, engine):
        self.engine, self.count = engine, 0

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._count)

    def _count(self, *args):
        self.count += 1


def test_list_queries_do_not_grow_with_the_page(app, db, client, company, login_as):
    acme = company(plugins=["pharma"])
    login_as("manager", acme)
    add_customers(db, acme, 3)
    client.get("/customers/")  # warm caches
    db.session.expire_all()
    with QueryCounter(db.engine) as small:
        assert client.get("/customers/").status_code == 200
    add_customers(db, acme, 60, start=3)
    db.session.expire_all()
    with QueryCounter(db.engine) as full:
        assert client.get("/customers/").status_code == 200
    assert full.count == small.count


def test_keyset_pages_cover_every_customer_once(app, db, client, company, login_as):
    app.config["LIST_PAGE_SIZE"] = 7
    acme = company(plugins=["sales"])
    login_as("manager", acme)
    add_customers(db, acme, 20)
    seen, after = [], None
    for _ in range(5):
        url = "/api/v1/customers?limit=7" + (f"&after={after}" if after else "")
        body = client.get(url).get_json()
        seen += [row["name"] for row in body["data"]]
        after = body["next_after"]
        if not after:
            break
    assert sorted(seen) == [f"客户{i:04d}" for i in range(20)]
    assert body["count"] == 20


@pytest.mark.parametrize("cursor", ["abc", "-1", "9" * 40])
def test_a_bad_cursor_is_a_clear_error_or_an_empty_page(app, client, company, login_as, cursor):
    login_as("manager", company())
    response = client.get(f"/api/v1/customers?after={cursor}")
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert "after" in response.get_json()["error"]["fields"]


def test_count_is_capped(app, db, client, company, login_as):
    app.config["COUNT_CAP"] = 10
    acme = company()
    login_as("manager", acme)
    add_customers(db, acme, 12)
    body = client.get("/api/v1/customers").get_json()
    assert body["count"] == 10 and body["count_capped"] is True
