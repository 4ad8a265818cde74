"""Notifications: the bell's unread count, the list, marking read, e-mail when SMTP is set."""

from __future__ import annotations

import re
import smtplib

import pytest
from sqlalchemy import select

from core.models import Notification
from core.notify import notify, notify_rows
from core.tenancy import company_scope
from tests.test_customer_list import QueryCounter


class FakeSMTP:
    """Stands in for smtplib.SMTP; records what would have been sent."""

    sent: list = []
    calls: list = []
    fail = False

    def __init__(self, host, port, timeout=None):
        if FakeSMTP.fail:
            raise OSError("connection refused")
        FakeSMTP.calls.append(("connect", host, port))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def starttls(self):
        FakeSMTP.calls.append(("starttls",))

    def login(self, user, password):
        FakeSMTP.calls.append(("login", user, password))

    def send_message(self, msg):
        FakeSMTP.sent.append(msg)


@pytest.fixture
def smtp(monkeypatch):
    FakeSMTP.sent, FakeSMTP.calls, FakeSMTP.fail = [], [], False
    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    return FakeSMTP


def bell(html: str) -> str | None:
    found = re.search(r'class="bell-count">([^<]*)<', html)
    return found.group(1) if found else None


def add(db, company, user, n, link=None):
    with company_scope(company.id):
        rows = [notify(user.id, "test", f"消息 {i}", link, email=False) for i in range(n)]
        db.session.commit()
        return [r.id for r in rows]


def test_the_bell_counts_unread_and_marking_read_lowers_it(app, db, client, company, login_as):
    acme = company()
    me = login_as("sales_rep", acme)
    assert bell(client.get("/customers/").get_data(as_text=True)) is None
    ids = add(db, acme, me, 3)
    assert bell(client.get("/customers/").get_data(as_text=True)) == "3"

    assert client.post(f"/notifications/{ids[0]}/read").status_code == 302
    assert bell(client.get("/customers/").get_data(as_text=True)) == "2"

    response = client.post("/notifications/read-all", follow_redirects=True)
    assert bell(response.get_data(as_text=True)) is None
    with company_scope(acme.id):
        assert all(n.read_at for n in db.session.scalars(select(Notification)))


def test_the_bell_caps_its_count_and_costs_one_query(app, db, client, company, login_as):
    acme = company()
    me = login_as("sales_rep", acme)
    add(db, acme, me, 2)
    client.get("/notifications/")
    counts = []
    for extra in (0, 120):
        add(db, acme, me, extra)
        db.session.expire_all()
        with QueryCounter(db.engine) as counter:
            html = client.get("/customers/").get_data(as_text=True)
        counts.append(counter.count)
    assert bell(html) == "99+"
    assert counts[0] == counts[1]


def test_only_my_own_notifications_of_this_company(app, db, client, company, login_as, make_user):
    acme, other = company(), company()
    me = login_as("sales_rep", acme)
    colleague = make_user("sales_rep", acme)
    add(db, acme, colleague, 2)
    stranger_ids = add(db, other, make_user("admin", other), 1)
    html = client.get("/notifications/").get_data(as_text=True)
    assert "消息" not in html and bell(html) is None
    assert client.post(f"/notifications/{stranger_ids[0]}/open").status_code == 404
    assert me is not None


def test_clicking_goes_to_the_link_and_marks_it_read(app, db, client, company, login_as):
    acme = company()
    me = login_as("service_agent", acme)
    (nid,) = add(db, acme, me, 1, link="/tickets/7")
    response = client.post(f"/notifications/{nid}/open")
    assert response.status_code == 302 and response.headers["Location"].endswith("/tickets/7")
    with company_scope(acme.id):
        assert db.session.get(Notification, nid).read_at is not None
    # a link to another site is never followed
    (evil,) = add(db, acme, me, 1, link="//evil.example/x")
    response = client.post(f"/notifications/{evil}/open")
    assert response.headers["Location"].endswith("/notifications/")


def test_the_list_is_newest_first_in_keyset_pages(app, db, client, company, login_as):
    app.config["LIST_PAGE_SIZE"] = 3
    acme = company()
    me = login_as("sales_rep", acme)
    add(db, acme, me, 5)
    first = client.get("/notifications/").get_data(as_text=True)
    assert re.findall(r"消息 (\d)", first) == ["4", "3", "2"]
    cursor = re.search(r'href="[^"]*before=(\d+)', first).group(1)
    second = client.get(f"/notifications/?before={cursor}").get_data(as_text=True)
    assert re.findall(r"消息 (\d)", second) == ["1", "0"]
    assert not re.search(r'href="[^"]*before=', second)
    assert client.get("/notifications/?before=abc").status_code == 400
    assert client.get("/notifications/?before=" + "9" * 30).status_code == 400


def test_no_email_without_smtp_settings(app, db, company, make_user, smtp):
    acme = company()
    user = make_user("sales_rep", acme)
    app.config["MAIL_SERVER"] = None
    with company_scope(acme.id):
        notify(user.id, "test", "工单 #3 已分派给您", "/tickets/3")
        db.session.commit()
    assert smtp.sent == [] and smtp.calls == []


def test_email_is_sent_after_commit_when_smtp_is_configured(app, db, company, make_user, smtp):
    acme = company()
    user = make_user("sales_rep", acme, email="li.lei@example.com")
    app.config.update(
        MAIL_SERVER="smtp.example.com",
        MAIL_PORT=587,
        MAIL_USE_TLS=True,
        MAIL_USERNAME="crm",
        MAIL_PASSWORD="pw",
        MAIL_DEFAULT_SENDER="crm@example.com",
        MAIL_BASE_URL="https://crm.example.com",
    )
    with company_scope(acme.id):
        notify(user.id, "test", "工单 #3 已分派给您", "/tickets/3")
        assert smtp.sent == []  # nothing before the commit
        db.session.commit()
    assert len(smtp.sent) == 1
    mail = smtp.sent[0]
    assert mail["To"] == "li.lei@example.com" and mail["From"] == "crm@example.com"
    assert "工单 #3 已分派给您" in mail["Subject"]
    assert "https://crm.example.com/tickets/3" in mail.get_content()
    assert ("connect", "smtp.example.com", 587) in smtp.calls
    assert ("starttls",) in smtp.calls and ("login", "crm", "pw") in smtp.calls

    # a rolled-back change sends nothing
    with company_scope(acme.id):
        notify(user.id, "test", "不会发送", "/tickets/4")
        db.session.rollback()
        db.session.commit()
    assert len(smtp.sent) == 1
    # email=False keeps it in the app
    with company_scope(acme.id):
        notify(user.id, "test", "只在站内", email=False)
        db.session.commit()
    assert len(smtp.sent) == 1


def test_a_failing_smtp_server_is_logged_not_raised(app, db, company, make_user, smtp, caplog):
    acme = company()
    user = make_user("sales_rep", acme)
    app.config["MAIL_SERVER"] = "smtp.example.com"
    smtp.fail = True
    with company_scope(acme.id):
        notify(user.id, "test", "照常保存", "/tickets/3")
        db.session.commit()
        assert db.session.scalar(select(Notification.message)) == "照常保存"
    assert "notification e-mail" in caplog.text


def test_clock_style_bulk_notifications_mail_each_user(app, db, company, make_user, smtp):
    acme, other = company(), company()
    agent, boss = make_user("service_agent", acme), make_user("manager", other)
    app.config["MAIL_SERVER"] = "smtp.example.com"
    notify_rows(
        [
            {
                "company_id": acme.id,
                "user_id": agent.id,
                "kind": "clock.level1",
                "message": "即将超时",
            },
            {
                "company_id": other.id,
                "user_id": boss.id,
                "kind": "clock.level2",
                "message": "已超时",
            },
        ]
    )
    db.session.commit()
    assert sorted(m["To"] for m in smtp.sent) == sorted([agent.email, boss.email])
