"""List exports: CSV and XLSX with the list's filters, the export permission, the audit log,
masking, and streaming that does not hold the rows in memory."""

from __future__ import annotations

import io
import tracemalloc

import pytest
from openpyxl import load_workbook
from sqlalchemy import insert, select

from core.models import AuditLog, Channel, Customer, ServiceTicket
from core.tenancy import company_scope


@pytest.fixture
def acme(company, db):
    co = company(code="acme")
    with company_scope(co.id):
        channel = Channel(name="华东代理")
        db.session.add(channel)
        db.session.flush()
        vip = Customer(name="王芳", kind="consumer", phone="13800138000", channel_id=channel.id)
        shop = Customer(name="瑞康药房", kind="intermediary", phone="021-5555 0101")
        db.session.add_all([vip, shop])
        db.session.flush()
        db.session.add_all(
            [
                ServiceTicket(customer_id=vip.id, subject="空调不制冷", priority="urgent"),
                ServiceTicket(customer_id=shop.id, subject="发票", priority="low"),
            ]
        )
        db.session.commit()
    return co


def rows_of(response, fmt):
    body = response.get_data()
    if fmt == "csv":
        text = body.decode("utf-8")
        assert text.startswith("\ufeff")
        return [line.split(",") for line in text.lstrip("\ufeff").splitlines()]
    sheet = load_workbook(io.BytesIO(body), read_only=True).active
    return [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_manager_exports_the_filtered_customer_list(client, login_as, acme, fmt):
    login_as("manager", acme)
    response = client.get(f"/customers/export.{fmt}?kind=consumer")
    assert response.status_code == 200
    assert f"customers.{fmt}" in response.headers["Content-Disposition"]
    rows = rows_of(response, fmt)
    assert rows[0][:3] == ["id", "code", "name"]
    assert [r[2] for r in rows[1:]] == ["王芳"]
    assert "华东代理" in rows[1]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_tickets_and_channels_export_with_their_filters(client, login_as, acme, fmt):
    login_as("manager", acme)
    tickets = rows_of(client.get(f"/tickets/export.{fmt}?priority=urgent"), fmt)
    assert tickets[0][:3] == ["id", "subject", "customer"]
    assert [r[1] for r in tickets[1:]] == ["空调不制冷"]
    channels = rows_of(client.get(f"/channels/export.{fmt}"), fmt)
    assert (
        channels[1][2] == "华东代理" and channels[0][10] == "customers" and channels[1][10] == "1"
    )


def test_a_manager_exports_the_next_steps_of_the_team(db, client, login_as, acme):
    from core import interactions
    from core.db import utcnow

    manager = login_as("manager", acme)
    with company_scope(acme.id):
        customer = db.session.scalar(select(Customer).where(Customer.name == "王芳"))
        interactions.log(
            customer,
            manager,
            kind="call",
            purpose="回访",
            next_step="发送报价单",
            next_step_due=utcnow(),
        )
        db.session.commit()
    rows = rows_of(client.get("/interactions/next-steps/export.xlsx?who=team"), "xlsx")
    assert rows[0][:3] == ["due", "next_step", "customer"]
    assert [r[1:3] for r in rows[1:]] == [["发送报价单", "王芳"]]
    assert client.get("/interactions/next-steps/export.csv?who=nobody").status_code == 400


def test_exports_need_the_permission_and_are_audited(db, client, login_as, acme):
    acme_id = acme.id  # exports empty the shared session as they go
    login_as("sales_rep", acme)
    for url in ("/customers/export.csv", "/tickets/export.xlsx", "/channels/export.csv"):
        assert client.get(url).status_code == 403, url
    login_as("manager", acme)
    assert client.get("/customers/export.xlsx?kind=consumer").status_code == 200
    with company_scope(acme_id):
        logged = db.session.scalars(select(AuditLog).where(AuditLog.action == "export")).all()
    assert [(a.entity_type, a.data["filters"]) for a in logged] == [
        ("customer", {"kind": ["consumer"]})
    ]


def test_the_export_buttons_show_only_with_the_permission(client, login_as, acme):
    login_as("sales_rep", acme)
    assert "export.csv" not in client.get("/customers/").get_data(as_text=True)
    login_as("manager", acme)
    page = client.get("/customers/").get_data(as_text=True)
    assert "/customers/export.csv" in page and "/customers/export.xlsx" in page


def test_a_bad_filter_is_a_400_not_a_file(client, login_as, acme):
    login_as("manager", acme)
    assert client.get("/customers/export.csv?kind=alien").status_code == 400
    assert client.get("/tickets/export.csv?priority=alien").status_code == 400


# openpyxl writes XLSX ~5x slower than csv under tracemalloc; 20k rows already show whether
# memory grows with the rows (it spools them to a temporary file).
@pytest.mark.parametrize(("fmt", "ROWS"), [("csv", 100_000), ("xlsx", 20_000)])
def test_an_export_of_100k_rows_streams_in_bounded_memory(db, client, login_as, company, fmt, ROWS):  # noqa: N803
    co = company(code="big")
    rows = [
        {"company_id": co.id, "name": f"客户{i:06d}", "kind": "consumer", "phone": f"138{i:08d}"}
        for i in range(ROWS)
    ]
    db.session.execute(insert(Customer), rows)
    db.session.commit()
    del rows
    login_as("manager", co)
    tracemalloc.start()
    try:
        response = client.get(f"/customers/export.{fmt}")
        assert response.status_code == 200
        size, lines = 0, 0
        for chunk in response.response:  # consumed as a client would read it
            size += len(chunk)
            if fmt == "csv":
                lines += chunk.count(b"\n")
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > ROWS * 20
    if fmt == "csv":
        assert lines == ROWS + 1
    # All rows at once would be >100 MB of ORM objects and text; one batch is a few MB.
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.1f} MB"
