"""Sales orders, payments and receivables (issue 6): the order form with free lines, payment
rules, channel credit warnings, receivables ageing by hand-computed buckets, the overdue-payment
clock, the API, reports, panels, the demo, and a company without sales getting 404."""

from __future__ import annotations

import csv
import io
import random
import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from core import clocks, tokens, workflow
from core.models import AuditLog, Channel, Customer, Notification, Obligation
from core.tenancy import company_scope
from core.testing import QueryCounter, company_today
from plugins.sales import orders as svc
from plugins.sales import value
from plugins.sales.models import Order, Payment

SHANGHAI = ZoneInfo("Asia/Shanghai")
D = Decimal


def sh(*args: int) -> datetime:
    """A moment in Shanghai local time."""
    return datetime(*args, tzinfo=SHANGHAI)


@pytest.fixture
def shop(app, db, company, make_user):
    """A company with sales: an admin, a manager, two reps of no team, a viewer; a distributor
    with a credit limit of 100,000 and a channel without one; customers of each rep. Also a
    company without sales. ``shop.order(...)`` creates an order through the service."""
    co = company(plugins=["sales"])
    plain = company()
    people = {r: make_user(r, co) for r in ("admin", "manager", "sales_rep", "viewer")}
    other_rep = make_user("sales_rep", co)
    with company_scope(co.id):
        dist = Channel(name="华南经销商", type="distributor", credit_limit=D("100000"))
        shop_channel = Channel(name="天猫旗舰店", type="ecommerce")
        db.session.add_all([dist, shop_channel])
        db.session.flush()
        mine = Customer(name="协和医院", code="C-1", region="北京市", status="existing",
                        owner_id=people["sales_rep"].id, channel_id=dist.id)  # fmt: skip
        theirs = Customer(name="仁济药房", code="C-2", region="上海市", status="existing",
                          owner_id=other_rep.id, channel_id=shop_channel.id)  # fmt: skip
        db.session.add_all([mine, theirs])
        db.session.commit()
        ids = SimpleNamespace(dist=dist.id, tmall=shop_channel.id, mine=mine.id, theirs=theirs.id)

    def order(customer_id, lines, *, ordered_on=None, due_on=None, user=None, at=None, **kw):
        with company_scope(co.id):
            data = svc.OrderInput(
                customer_id=customer_id,
                ordered_on=ordered_on or company_today() - timedelta(days=1),
                due_on=due_on,
                lines=[svc.LineInput(*line) for line in lines],
                **kw,
            )
            assert svc.problems(data) == {}
            made = svc.create_order(data, user or people["manager"], at=at)
            db.session.commit()
            return made.id

    return SimpleNamespace(
        company=co, plain=plain, other_rep=other_rep, order=order, **people, **vars(ids)
    )


def get_order(db, shop, order_id) -> Order:
    with company_scope(shop.company.id):
        return db.session.get(Order, order_id)


def text(response) -> str:
    return response.get_data(as_text=True)


def report_rows(html: str) -> dict[str, list[str]]:
    """The rows of a report's table, by their first cell's text."""
    table = html[html.index('class="list report-table"') :]
    table = table[table.index("<tbody>") : table.index("</table>")]
    out = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        cells = [
            re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        out[cells[0]] = cells[1:]
    return out


def form_lines(*lines) -> dict[str, str]:
    out = {}
    for n, (product, qty, price, cost) in enumerate(lines):
        out |= {
            f"lines-{n}-product": product,
            f"lines-{n}-quantity": qty,
            f"lines-{n}-unit_price": price,
            f"lines-{n}-unit_cost": cost,
        }
    return out


# -- the order form -------------------------------------------------------------------------------


def test_new_order_sums_its_lines_numbers_it_and_defaults_due_date_and_channel(
    app, db, client, shop
):
    client_login(client, shop.sales_rep, shop.company)
    page = client.get(f"/sales/orders/new?customer_id={shop.mine}")
    assert page.status_code == 200
    assert f'value="#{shop.mine} 协和医院"' in text(page)
    ordered = company_today() - timedelta(days=3)
    response = client.post(
        "/sales/orders/new",
        data={
            "customer": f"#{shop.mine} 协和医院",
            "ordered_on": ordered.isoformat(),
            **form_lines(
                ("阿莫西林胶囊", "10", "120.50", "80"),
                ("口罩", "3", "33.33", "20"),
                ("", "", "", ""),
            ),  # fmt: skip
        },
    )
    assert response.status_code == 302, text(response)
    with company_scope(shop.company.id):
        order = db.session.scalars(select(Order)).one()
        # 10 × 120.50 + 3 × 33.33 = 1205.00 + 99.99; cost 800 + 60
        assert (order.amount, order.cost, order.margin) == (D("1304.99"), D("860.00"), D("444.99"))
        assert order.number == f"SO-{ordered.year}-000001"
        assert order.due_on == ordered + timedelta(days=30)  # default payment terms
        assert order.channel_id == shop.dist  # the customer's channel
        assert order.owner_id == shop.sales_rep.id  # the customer's owner
        assert len(order.lines) == 2 and order.state == "open"
        revenue = db.session.get(Customer, shop.mine).revenue
    assert revenue == D("1304.99")  # kept from the orders of the last 12 months
    detail = text(client.get(response.headers["Location"]))
    assert "1,304.99" in detail and "阿莫西林胶囊" in detail


def client_login(client, user, company) -> None:
    """Log ``user`` in to ``company`` in English (messages are asserted in English)."""
    from core.db import db

    user.locale = "en"
    db.session.commit()
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
        session["company_id"] = company.id


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"ordered_on": "2999-01-01"}, "ordered_on", "cannot be in the future"),
        ({"due_on": "2020-01-01"}, "due_on", "before the order date"),
        ({"lines-0-quantity": "0"}, "lines-0-quantity", "Enter a number from 0.01"),
        ({"lines-0-unit_price": "abc"}, "lines-0-unit_price", "Not a valid decimal"),
        ({"lines-0-product": ""}, "lines-0-product", "Name the product"),
        ({"lines-0-quantity": "1.234"}, "lines-0-quantity", "decimal places"),
        ({"customer": "nobody"}, "customer", "No customer"),
    ],
)
def test_bad_order_input_is_a_message_at_the_field(app, db, client, shop, fields, field, message):
    client_login(client, shop.sales_rep, shop.company)
    data = {
        "customer": f"#{shop.mine}",
        "ordered_on": "2026-01-05",
        **form_lines(("产品", "1", "100", "50")),
        **fields,
    }
    response = client.post("/sales/orders/new", data=data)
    assert response.status_code == 422
    errors = re.findall(r'<small class="error" data-field="([^"]+)">([^<]*)<', text(response))
    assert any(name == field and message in msg for name, msg in errors), errors
    with company_scope(shop.company.id):
        assert db.session.scalar(select(func.count(Order.id))) == 0


def test_an_order_without_lines_is_refused(app, db, client, shop):
    client_login(client, shop.sales_rep, shop.company)
    response = client.post(
        "/sales/orders/new",
        data={"customer": "C-1", "ordered_on": "2026-01-05", **form_lines(("", "", "", ""))},
    )
    assert response.status_code == 422
    assert 'data-field="lines"' in text(response)


def test_a_viewer_reads_orders_but_cannot_create_them(app, db, client, shop):
    shop.order(shop.mine, [("产品", D(1), D(100))])
    client_login(client, shop.viewer, shop.company)
    assert client.get("/sales/orders").status_code == 200
    assert client.get("/sales/orders/new").status_code == 403


# -- payments -------------------------------------------------------------------------------------


def test_payments_update_paid_and_settle_the_order_overpayment_refused(app, db, client, shop):
    order_id = shop.order(shop.mine, [("产品", D(2), D("500.00"), D("300"))])
    client_login(client, shop.sales_rep, shop.company)
    url = f"/sales/orders/{order_id}/payments"
    today = company_today().isoformat()

    def pay(amount, paid_on=today):
        return client.post(url, data={"amount": amount, "paid_on": paid_on, "method": "transfer"})

    for amount, message in (("0", "above zero"), ("-5", "above zero"), ("1000.01", "¥1,000.00")):
        refused = pay(amount)
        assert refused.status_code == 422
        assert re.search(rf'data-field="amount">[^<]*{re.escape(message)}', text(refused))
    refused = pay("10", (company_today() + timedelta(days=1)).isoformat())
    assert refused.status_code == 422 and 'data-field="paid_on"' in text(refused)
    assert pay("400").status_code == 302
    order = get_order(db, shop, order_id)
    assert (order.paid, order.state, order.outstanding) == (D("400.00"), "open", D("600.00"))
    assert "¥600.00" in text(pay("600.01"))  # the most that is left
    assert pay("600").status_code == 302
    order = get_order(db, shop, order_id)
    assert (order.paid, order.state) == (D("1000.00"), "paid")
    with company_scope(shop.company.id):
        total = db.session.scalar(select(func.sum(Payment.amount)))
    assert D(str(total)) == order.paid
    closed = pay("1")
    assert closed.status_code == 422 and "no more payments" in text(closed)


def test_a_manager_reverses_a_payment_and_the_order_is_open_again(app, db, client, shop):
    order_id = shop.order(shop.mine, [("产品", D(1), D("800"))])
    with company_scope(shop.company.id):
        order = db.session.get(Order, order_id)
        payment = svc.record_payment(order, D(800), company_today(), shop.sales_rep)
        db.session.commit()
        payment_id = payment.id
    assert get_order(db, shop, order_id).state == "paid"
    client_login(client, shop.sales_rep, shop.company)
    url = f"/sales/orders/{order_id}/payments/{payment_id}/reverse"
    assert client.post(url).status_code == 403
    client_login(client, shop.manager, shop.company)
    assert client.post(url).status_code == 302
    order = get_order(db, shop, order_id)
    assert (order.paid, order.state) == (D("0.00"), "open")


def test_cancel_needs_a_reason_and_no_payments(app, db, client, shop):
    paid_id = shop.order(shop.mine, [("产品", D(1), D("800"))])
    free_id = shop.order(shop.mine, [("产品", D(1), D("300"))])
    with company_scope(shop.company.id):
        svc.record_payment(db.session.get(Order, paid_id), D(100), company_today(), shop.manager)
        db.session.commit()
    client_login(client, shop.manager, shop.company)
    refused = client.post(f"/sales/orders/{paid_id}/transition/cancel", data={
        "comment": "客户取消", "version": str(get_order(db, shop, paid_id).version)})  # fmt: skip
    assert refused.status_code == 422 and "reverse them" in text(refused)
    url = f"/sales/orders/{free_id}/transition/cancel"
    version = str(get_order(db, shop, free_id).version)
    no_reason = client.post(url, data={"comment": "", "version": version})
    assert no_reason.status_code == 422
    assert client.post(url, data={"comment": "客户取消", "version": version}).status_code == 302
    assert get_order(db, shop, free_id).state == "cancelled"
    with company_scope(shop.company.id):
        assert db.session.get(Customer, shop.mine).revenue == D("800.00")  # cancelled: out


# -- channel credit -------------------------------------------------------------------------------


def test_an_order_over_the_channels_credit_limit_needs_confirmation(app, db, client, shop):
    first = shop.order(shop.mine, [("产品", D(1), D("90000"))])
    with company_scope(shop.company.id):
        svc.record_payment(db.session.get(Order, first), D(10000), company_today(), shop.manager)
        db.session.commit()  # the distributor owes 80,000 of its 100,000 limit
    client_login(client, shop.sales_rep, shop.company)
    data = {
        "customer": "C-1",
        "ordered_on": company_today().isoformat(),
        **form_lines(("产品", "3", "10000", "7000")),
    }
    warned = client.post("/sales/orders/new", data=data)
    assert warned.status_code == 422
    html = text(warned)
    numbers = dict(re.findall(r'<dd data-credit="(\w+)">(?:<strong>)?¥([\d,.-]+)', html))
    assert numbers == {
        "limit": "100,000.00",
        "others": "80,000.00",
        "available": "20,000.00",
        "order": "30,000.00",
        "after": "110,000.00",
        "excess": "10,000.00",
    }
    assert 'name="confirm_credit"' in html
    with company_scope(shop.company.id):
        assert db.session.scalar(select(func.count(Order.id))) == 1  # nothing saved
    within = client.post(
        "/sales/orders/new", data={**data, **form_lines(("产品", "2", "10000", "0"))}
    )
    assert within.status_code == 302  # 20,000 more: exactly the limit, no warning
    confirmed = client.post("/sales/orders/new", data={**data, "confirm_credit": "y"})
    assert confirmed.status_code == 302
    with company_scope(shop.company.id):
        audit = db.session.scalars(
            select(AuditLog).where(AuditLog.entity_type == "sales_order").order_by(AuditLog.id)
        ).all()[-1]
        assert audit.data["credit_limit_exceeded"] == {
            "channel_id": shop.dist,
            "limit": "100000.00",
            "outstanding_before": "100000.00",
            "outstanding_after": "130000.00",
        }


def test_the_channel_page_shows_its_credit_and_receivables(app, db, client, shop):
    shop.order(shop.mine, [("产品", D(1), D("90000"))])
    client_login(client, shop.manager, shop.company)
    html = text(client.get(f"/channels/{shop.dist}"))
    assert "信用与应收" in html or "Credit and receivables" in html
    assert "¥90,000.00" in html


def test_editing_an_order_within_what_it_owed_does_not_warn(app, db, client, shop):
    with company_scope(shop.company.id):
        data = svc.OrderInput(shop.mine, company_today(), [svc.LineInput("产品", D(1), D(120000))])
        order_id = svc.create_order(data, shop.manager).id  # over the limit (created by hand)
        db.session.commit()
    client_login(client, shop.manager, shop.company)
    page = client.get(f"/sales/orders/{order_id}/edit")
    assert page.status_code == 200
    version = re.search(r'name="version" type="hidden" value="(\d+)"', text(page)).group(1)
    data = {"ordered_on": company_today().isoformat(), "version": version, "channel_id": "",
            "owner_id": "", **form_lines(("产品", "1", "110000", "0"))}  # fmt: skip
    assert client.post(f"/sales/orders/{order_id}/edit", data=data).status_code == 302
    more = {**data, "version": str(get_order(db, shop, order_id).version),
            **form_lines(("产品", "1", "115000", "0"))}  # fmt: skip
    assert client.post(f"/sales/orders/{order_id}/edit", data=more).status_code == 422


# -- ageing ---------------------------------------------------------------------------------------


def _aged(shop, days_overdue, amount, paid=D(0), customer=None):
    """An open order due ``days_overdue`` days ago (negative: in the future)."""
    due = company_today() - timedelta(days=days_overdue)
    ordered = min(due - timedelta(days=10), company_today())
    order_id = shop.order(customer or shop.mine, [("产品", D(1), D(amount))], ordered_on=ordered,
                          due_on=due)  # fmt: skip
    if paid:
        from core.db import db

        with company_scope(shop.company.id):
            svc.record_payment(db.session.get(Order, order_id), paid, ordered, shop.manager)
            db.session.commit()
    return order_id


def test_receivables_ageing_buckets_hand_computed(app, db, client, shop):
    # not due: due today (1,000) and in 5 days (500 of 700 left)
    _aged(shop, 0, 1000)
    _aged(shop, -5, 700, paid=D(200))
    # 0–30: 1 day (100) and 30 days (200); 31–60: 31 (400) and 60 (800)
    _aged(shop, 1, 100)
    _aged(shop, 30, 200)
    _aged(shop, 31, 400)
    _aged(shop, 60, 800)
    # 61–90: 61 (1,600) and 90 (3,200, 1,200 paid); over 90: 91 (6,400)
    _aged(shop, 61, 1600)
    _aged(shop, 90, 3200, paid=D(1200))
    _aged(shop, 91, 6400)
    _aged(shop, 45, 5000, customer=shop.theirs)  # another channel: 31–60
    paid = _aged(shop, 120, 999)
    with company_scope(shop.company.id):
        order = db.session.get(Order, paid)
        svc.record_payment(order, D(999), company_today(), shop.manager)
        db.session.commit()  # fully paid: not a receivable at all
    client_login(client, shop.manager, shop.company)
    html = text(client.get("/sales/receivables?by=channel"))
    dist = html[html.index(f'data-channel="{shop.dist}"') :]
    dist = dist[: dist.index("</tr>")]
    cells = dict(re.findall(r'data-bucket="(\w+)">(?:<a[^>]*>)?([\d,.–]+)', dist))
    assert cells == {
        "not_due": "1,500.00",
        "d0_30": "300.00",
        "d31_60": "1,200.00",
        "d61_90": "3,600.00",
        "d90_plus": "6,400.00",
        "total": "13,000.00",
    }
    assert re.search(r'data-credit="used">13,000.00 \(13%\)', dist)
    assert 'data-credit="available">87,000.00' in dist
    totals = html[html.index('data-row="totals"') :]
    totals = totals[: totals.index("</tr>")]
    totals = dict(re.findall(r'data-bucket="(\w+)">(?:<a[^>]*>)?([\d,.–]+)', totals))
    assert totals["d31_60"] == "6,200.00" and totals["total"] == "18,000.00"
    # the report: one stacked bar per channel, drilling into the filtered list
    report = text(client.get("/reports/sales_receivables_ageing"))
    assert "华南经销商" in report and "天猫旗舰店" in report
    drill = f"/sales/orders?state=open&amp;channel={shop.dist}&amp;ageing=d61_90"
    assert drill in report
    listed = text(client.get(drill.replace("&amp;", "&")))
    assert listed.count("data-order=") == 2 and "3,600.00" in listed  # outstanding total


def test_a_sales_rep_sees_the_receivables_of_their_customers_only(app, db, client, shop):
    _aged(shop, 10, 1000)
    _aged(shop, 10, 5000, customer=shop.theirs)
    client_login(client, shop.sales_rep, shop.company)
    html = text(client.get("/sales/receivables"))
    assert "协和医院" in html and "仁济药房" not in html
    listed = text(client.get("/sales/orders"))
    assert listed.count("data-order=") == 1
    with company_scope(shop.company.id):
        hidden = db.session.scalar(select(Order.id).where(Order.customer_id == shop.theirs))
    assert client.get(f"/sales/orders/{hidden}").status_code == 403


def test_overdue_filter_and_customer_panel_and_timeline(app, db, client, shop):
    late = _aged(shop, 40, 2000, paid=D(500))
    _aged(shop, -3, 300)
    client_login(client, shop.sales_rep, shop.company)
    listed = text(client.get("/sales/orders?overdue=1"))
    assert re.findall(r'data-order="(\d+)"', listed) == [str(late)]
    assert 'data-overdue="40"' in listed
    page = text(client.get(f"/customers/{shop.mine}"))
    assert re.search(r'data-field="outstanding"><a[^>]*>¥1,800.00', page)
    assert re.search(r'data-field="overdue"><a[^>]*>¥1,500.00', page)
    number = get_order(db, shop, late).number
    assert f"Order {number}" in page or f"订单 {number}" in page or number in page
    assert 'data-kind="order"' in page and 'data-kind="payment"' in page


# -- the clock ------------------------------------------------------------------------------------


def test_an_unpaid_order_breaches_its_payment_clock_and_paying_meets_it(app, db, shop):
    # Created Monday 2024-03-04 10:00, due Friday 2024-03-08: 8 h on Monday and 9 h on each
    # of the four days after, so the clock allows 44 working hours and falls due Friday 18:00.
    order_id = shop.order(shop.mine, [("产品", D(1), D("5000"))], ordered_on=date(2024, 3, 4),
                          due_on=date(2024, 3, 8), at=sh(2024, 3, 4, 10),
                          user=shop.sales_rep)  # fmt: skip
    late_id = shop.order(shop.mine, [("产品", D(1), D("700"))], ordered_on=date(2024, 3, 4),
                         due_on=date(2024, 3, 8), at=sh(2024, 3, 4, 10))  # fmt: skip
    with company_scope(shop.company.id):
        row = db.session.scalars(
            select(Obligation).where(
                Obligation.kind == svc.CLOCK, Obligation.subject_id == order_id
            )  # fmt: skip
        ).one()
        assert row.target_minutes == 44 * 60
        assert row.due_at == sh(2024, 3, 8, 18)
        assert row.status(sh(2024, 3, 8, 13)) == "running"
        assert row.status(sh(2024, 3, 8, 14)) == "at_risk"  # 90 % used: Friday 13:36
        assert row.status(sh(2024, 3, 11, 9, 30)) == "breached"
    assert clocks.scan(now=sh(2024, 3, 11, 9, 30)) == 2
    with company_scope(shop.company.id):
        notes = db.session.scalars(select(Notification).order_by(Notification.id)).all()
        owner = [n for n in notes if n.user_id == shop.sales_rep.id]
        assert owner and owner[0].link == f"/sales/orders/{order_id}"
        assert "回款到期" in owner[0].message and "已超时" in owner[0].message
        assert {n.user_id for n in notes} >= {shop.manager.id}  # breached: managers too
        # Paid on the due date, entered a week later: met on time (noon of the day paid).
        order = db.session.get(Order, late_id)
        svc.record_payment(order, D(700), date(2024, 3, 8), shop.manager, at=sh(2024, 3, 15, 9))
        # The other one paid late.
        svc.record_payment(db.session.get(Order, order_id), D(5000), date(2024, 3, 12),
                           shop.manager, at=sh(2024, 3, 12, 15))  # fmt: skip
        db.session.commit()
        status = {
            r.subject_id: r.status(sh(2024, 3, 20))
            for r in db.session.scalars(select(Obligation).where(Obligation.kind == svc.CLOCK))
        }
    assert status == {late_id: "met", order_id: "met_late"}


def test_a_new_due_date_restarts_the_clock(app, db, client, shop):
    order_id = shop.order(shop.mine, [("产品", D(1), D("100"))], ordered_on=date(2024, 3, 4),
                          due_on=date(2024, 3, 8), at=sh(2024, 3, 4, 10))  # fmt: skip
    client_login(client, shop.manager, shop.company)
    data = {"ordered_on": "2024-03-04", "due_on": "2024-03-11", "channel_id": "", "owner_id": "",
            "version": str(get_order(db, shop, order_id).version),
            **form_lines(("产品", "1", "100", "0"))}  # fmt: skip
    assert client.post(f"/sales/orders/{order_id}/edit", data=data).status_code == 302
    with company_scope(shop.company.id):
        row = db.session.scalars(select(Obligation).where(Obligation.kind == svc.CLOCK)).one()
        assert row.due_at == sh(2024, 3, 11, 18)


def test_a_due_date_on_a_rest_day_moves_to_the_next_working_day(app, db, shop):
    # Due Saturday 2024-03-09: the payment is late only after Monday's work, not on Friday.
    order_id = shop.order(shop.mine, [("产品", D(1), D("100"))], ordered_on=date(2024, 3, 4),
                          due_on=date(2024, 3, 9), at=sh(2024, 3, 4, 10))  # fmt: skip
    with company_scope(shop.company.id):
        row = db.session.scalars(
            select(Obligation).where(
                Obligation.kind == svc.CLOCK, Obligation.subject_id == order_id
            )
        ).one()
        assert row.due_at == sh(2024, 3, 11, 18)
        assert row.status(sh(2024, 3, 9, 12)) != "breached"


# -- API ------------------------------------------------------------------------------------------


@pytest.fixture
def api(app, db, shop):
    _row, secret = tokens.issue(shop.sales_rep, shop.company.id, "erp")
    db.session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_api_creates_orders_with_lines_and_payments_settle_them(app, db, client, shop, api):
    body = {
        "customer_id": shop.mine,
        "ordered_on": "2026-01-10",
        "lines": [
            {"product": "布洛芬", "quantity": "4", "unit_price": "25.50", "unit_cost": "15"},
            {"product": "口罩", "quantity": 2, "unit_price": 100},
        ],
    }
    made = client.post("/api/v1/sales_orders", json=body, headers=api)
    assert made.status_code == 201, made.get_json()
    order = made.get_json()
    assert (order["amount"], order["cost"], order["paid"], order["state"]) == (
        "302.00", "60.00", "0.00", "open"
    )  # fmt: skip
    assert order["number"] == "SO-2026-000001" and order["due_on"] == "2026-02-09"
    assert order["channel_id"] == shop.dist and len(order["lines"]) == 2
    pay = {"order_id": order["id"], "paid_on": "2026-01-20", "amount": "302.01"}
    too_much = client.post("/api/v1/sales_payments", json=pay, headers=api)
    assert too_much.status_code == 422 and "amount" in too_much.get_json()["error"]["fields"]
    zero = client.post("/api/v1/sales_payments", json={**pay, "amount": "0"}, headers=api)
    assert zero.status_code == 422
    for amount in ("102", "200"):
        done = client.post("/api/v1/sales_payments", json={**pay, "amount": amount}, headers=api)
        assert done.status_code == 201, done.get_json()
    after = client.get(f"/api/v1/sales_orders/{order['id']}", headers=api).get_json()
    assert (after["paid"], after["state"], after["outstanding"]) == ("302.00", "paid", "0.00")
    payments = client.get(f"/api/v1/sales_payments?order_id={order['id']}", headers=api)
    assert payments.get_json()["count"] == 2
    change = client.patch(
        f"/api/v1/sales_payments/{payments.get_json()['data'][0]['id']}",
        json={"amount": "1"},
        headers=api,
    )
    assert change.status_code == 403
    edit = client.patch(f"/api/v1/sales_orders/{order['id']}", json={"notes": "x"}, headers=api)
    assert edit.status_code == 422 and "state" in edit.get_json()["error"]["fields"]


def test_api_refuses_bad_orders_naming_the_field(app, client, shop, api):
    base = {"customer_id": shop.mine, "ordered_on": "2026-01-10",
            "lines": [{"product": "x", "quantity": "1", "unit_price": "1"}]}  # fmt: skip
    for change, field in (
        ({"lines": []}, "lines"),
        ({"ordered_on": "2999-01-01"}, "ordered_on"),
        ({"due_on": "2025-01-01"}, "due_on"),
        ({"customer_id": shop.theirs}, "customer_id"),  # hidden from this rep
        ({"lines": [{"product": "x", "quantity": "0", "unit_price": "1"}]}, "lines"),
        ({"lines": [{"product": "x", "quantity": "1", "unit_price": "0"}]}, "lines"),
    ):
        answer = client.post("/api/v1/sales_orders", json={**base, **change}, headers=api)
        assert answer.status_code == 422, (change, answer.get_json())
        assert field in answer.get_json()["error"]["fields"], (change, answer.get_json())


# -- reports, export, another company -------------------------------------------------------------


def test_revenue_report_by_month_and_by_channel(app, db, client, shop):
    today = company_today()
    shop.order(shop.mine, [("产品", D(2), D("1000"), D("700"))], ordered_on=today)
    shop.order(shop.theirs, [("产品", D(1), D("500"), D("250"))], ordered_on=today)
    gone = shop.order(shop.mine, [("产品", D(1), D("9999"))], ordered_on=today)
    with company_scope(shop.company.id):
        workflow.transition(db.session.get(Order, gone), "cancel", user=shop.manager,
                            inputs={"comment": "录错"})  # fmt: skip
        db.session.commit()
    client_login(client, shop.manager, shop.company)
    by_month = report_rows(text(client.get("/reports/sales_revenue")))
    assert len(by_month) == 12  # the last twelve months, zero-filled
    # orders, revenue, margin, rate: 2,000 + 500 (the cancelled one left out), 600 + 250
    assert by_month[today.strftime("%Y-%m")] == ["2", "2,500.00", "850.00", "34.0%"]
    by_channel = report_rows(text(client.get("/reports/sales_revenue?dimension=channel")))
    assert by_channel["华南经销商"] == ["1", "2,000.00", "600.00", "30.0%"]
    assert by_channel["天猫旗舰店"] == ["1", "500.00", "250.00", "50.0%"]
    by_region = report_rows(text(client.get("/reports/sales_revenue?dimension=region")))
    assert set(by_region) == {"北京市", "上海市"}
    stacked = client.get("/reports/sales_revenue_by_channel")
    assert stacked.status_code == 200 and "天猫旗舰店" in text(stacked)


def test_export_csv_for_a_manager_refused_to_a_rep(app, db, client, shop):
    order_id = shop.order(shop.mine, [("阿莫西林", D(3), D("10.00"), D("6"))])
    client_login(client, shop.manager, shop.company)
    answer = client.get("/sales/orders/export.csv")
    assert answer.status_code == 200
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:3] == ["number", "ordered_on", "due_on"]
    record = dict(zip(rows[0], rows[1], strict=True))
    assert record["number"] == get_order(db, shop, order_id).number
    assert (record["amount"], record["outstanding"], record["products"]) == (
        "30.00", "30.00", "阿莫西林 × 3"
    )  # fmt: skip
    client_login(client, shop.sales_rep, shop.company)
    assert client.get("/sales/orders/export.csv").status_code == 403


def test_list_query_count_does_not_grow_with_the_page(app, db, client, shop):
    for n in range(12):
        shop.order(shop.mine if n % 2 else shop.theirs, [("产品", D(1), D(100 + n))])
    client_login(client, shop.manager, shop.company)
    counts = []
    for size in (3, 12):
        app.config["LIST_PAGE_SIZE"] = size
        with QueryCounter(db.engine) as counter:
            assert client.get("/sales/orders?state=open").status_code == 200
        counts.append(counter.count)
    assert counts[0] == counts[1]
    app.config["LIST_PAGE_SIZE"] = 3
    first = text(client.get("/sales/orders"))
    cursor = re.search(r"after=([\w-]+)", first).group(1)
    second = text(client.get(f"/sales/orders?after={cursor}"))
    seen = re.findall(r'data-order="(\d+)"', first) + re.findall(r'data-order="(\d+)"', second)
    assert len(seen) == len(set(seen)) == 6
    assert client.get("/sales/orders?after=bogus").status_code == 400


def test_a_company_without_sales_gets_404(app, db, client, shop, make_user):
    order_id = shop.order(shop.mine, [("产品", D(1), D(100))])
    outsider = make_user("admin", shop.plain)
    client_login(client, outsider, shop.plain)
    for url in ("/sales/orders", "/sales/orders/new", "/sales/receivables",
                f"/sales/orders/{order_id}", "/reports/sales_revenue",
                "/reports/sales_receivables_ageing", "/api/v1/sales_orders",
                "/api/v1/sales_payments"):  # fmt: skip
        assert client.get(url).status_code == 404, url
    assert "/sales/orders" not in text(client.get("/dashboard/"))
    client_login(client, shop.admin, shop.company)
    assert "/sales/orders" in text(client.get("/dashboard/"))


# -- demo -----------------------------------------------------------------------------------------


def test_demo_orders_match_revenue_and_fill_every_ageing_bucket(app, db, shop):
    rng = random.Random(7)
    with company_scope(shop.company.id):
        people = [shop.sales_rep.id, shop.manager.id]
        for n in range(30):
            db.session.add(
                Customer(
                    name=f"客户{n}",
                    status="existing",
                    revenue=D(rng.choice([0, 8000, 60000, 400000, 1500000])),
                    owner_id=people[n % 2],
                    channel_id=shop.dist if n % 3 else shop.tmall,
                    created_at=datetime.now(SHANGHAI) - timedelta(days=800),
                )
            )
        db.session.commit()
        before = dict(db.session.execute(select(Customer.id, Customer.revenue)).all())
        svc.demo(shop.company, None)
        db.session.commit()
        assert db.session.scalar(select(func.count(Order.id))) >= 60
        value.recompute()
        after = dict(db.session.execute(select(Customer.id, Customer.revenue)).all())
        assert {k: v for k, v in after.items() if before[k]} == {
            k: v for k, v in before.items() if v
        }  # twelve months of orders add up to the revenue seeded
        margins = db.session.execute(select(Order.amount, Order.cost)).all()
        rates = [(a - c) / a for a, c in margins]
        assert min(rates) > D("0.19") and max(rates) < D("0.41")
        ageing = svc.ageing_of()
        assert all(ageing.get(k) > 0 for k in svc.BUCKET_KEYS), ageing
        states = dict(
            db.session.execute(select(Order.state, func.count()).group_by(Order.state)).all()
        )
        assert states["paid"] > states["open"]
        limits = {c.id: c for c in db.session.scalars(select(Channel))}
        used = svc.outstanding_by_channel()
        near = [
            cid for cid, total in used.items()
            if limits[cid].credit_limit and D("0.85") < total / limits[cid].credit_limit <= 1
        ]  # fmt: skip
        assert near


def test_dashboard_shows_receivables_by_ageing_and_the_most_overdue(app, db, client, shop):
    today = company_today()
    late = shop.order(shop.mine, [("产品", D(1), D("4000"))], ordered_on=today - timedelta(days=80),
                      due_on=today - timedelta(days=45), user=shop.sales_rep)  # fmt: skip
    shop.order(shop.theirs, [("产品", D(1), D("9000"))], ordered_on=today - timedelta(days=1),
               user=shop.other_rep)  # fmt: skip
    client_login(client, shop.sales_rep, shop.company)
    page = text(client.get("/dashboard/"))
    assert "应收账款" in page or "Receivables" in page
    assert f"/sales/orders/{late}" in page and "¥4,000" in page  # 45 days overdue, listed
    assert "¥9,000" not in page  # another rep's order is not on this rep's dashboard
    client_login(client, shop.manager, shop.company)
    page = text(client.get("/dashboard/"))
    assert "¥9,000" in page and "¥4,000" in page
