"""Comments on any record (customer, ticket, a plugin's record) with @mentions that notify."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from core.comments import mentioned
from core.models import Comment, Customer, Membership, Notification
from core.tenancy import company_scope
from core.tickets import open_ticket


@pytest.fixture
def acme(app, db, company, make_user):
    co = company(plugins=[])
    with company_scope(co.id):
        customer = Customer(name="华东医药")
        db.session.add(customer)
        db.session.commit()
        co.customer_id = customer.id
    co.li = make_user("sales_rep", co, email="li.lei@acme.example")
    co.wang = make_user("manager", co, email="wang@acme.example")
    return co


def notes(db, company_id):
    with company_scope(company_id):
        return sorted(
            db.session.execute(
                select(Notification.user_id, Notification.link).where(
                    Notification.kind == "comment.mention"
                )
            ).all()
        )


def test_a_comment_on_a_customer_notifies_the_member_mentioned(
    app, db, client, acme, login_as, company, make_user
):
    me = login_as("manager", acme)
    elsewhere = company()
    make_user("sales_rep", elsewhere, email="li.lei@other.example")  # same handle elsewhere
    page = f"/customers/{acme.customer_id}"
    response = client.post(
        f"/comments/customer/{acme.customer_id}",
        data={"body": "@li.lei 请周五前回访一次，@nobody 不存在", "next": page},
    )
    assert response.status_code == 302
    with company_scope(acme.id):
        comment = db.session.scalars(select(Comment)).one()
    assert response.headers["Location"].endswith(f"{page}#comment-{comment.id}")
    assert (comment.subject_type, comment.user_id) == ("customer", me.id)
    assert notes(db, acme.id) == [(acme.li.id, f"{page}#comment-{comment.id}")]
    assert notes(db, elsewhere.id) == []
    html = client.get(f"/comments/customer/{acme.customer_id}").get_data(as_text=True)
    assert "请周五前回访一次" in html and f'id="comment-{comment.id}"' in html


def test_mentions_by_name_and_email_and_not_inside_addresses(app, acme):
    people = [(1, "Li Lei", "li.lei@x.cn"), (2, "王芳", "fang@x.cn"), (3, "Li", "li@x.cn")]
    assert mentioned("ask @Li Lei today", people) == {1}
    assert mentioned("@王芳请看一下", people) == {2}
    assert mentioned("@fang, @li", people) == {2, 3}
    assert mentioned("write to li@x.cn or wang@fang", people) == set()
    assert mentioned("@lily is not Li", people) == set()


def test_the_author_is_not_notified_of_their_own_mention(app, db, client, acme, login_as):
    login_as("manager", acme)
    with client.session_transaction() as session:
        session["_user_id"] = str(acme.wang.id)
    client.post(f"/comments/customer/{acme.customer_id}", data={"body": "@wang 记一下"})
    assert notes(db, acme.id) == []


def test_a_comment_on_a_ticket(app, db, client, acme, login_as):
    login_as("service_agent", acme)
    with company_scope(acme.id):
        ticket = open_ticket(customer_id=acme.customer_id, subject="发票开错")
        db.session.commit()
        ticket_id = ticket.id
    response = client.post(
        f"/comments/service_ticket/{ticket_id}", data={"body": "@王 无人; @wang 请批准补偿"}
    )
    assert response.status_code == 302
    assert f"/tickets/{ticket_id}#comment-" in response.headers["Location"]
    assert [u for u, _link in notes(db, acme.id)] == [acme.wang.id]


@pytest.mark.guanxi_plugins("tests.sample_plugin")
def test_a_comment_on_a_plugin_record_while_the_plugin_is_enabled(
    app, db, client, company, login_as, make_user
):
    from tests.sample_plugin import SampleNote

    on, off = company(plugins=["sample"]), company()
    member = make_user("admin", on, email="zhao@on.example")
    for co in (on, off):
        with company_scope(co.id):
            note = SampleNote(text="样品记录")
            db.session.add(note)
            db.session.commit()
            co.note_id = note.id
    login_as("manager", on)
    response = client.post(f"/comments/sample_note/{on.note_id}", data={"body": "@zhao 看看"})
    assert response.status_code == 302
    ((user_id, link),) = notes(db, on.id)
    assert user_id == member.id and link.startswith(f"/comments/sample_note/{on.note_id}#comment-")
    html = client.get(f"/comments/sample_note/{on.note_id}").get_data(as_text=True)
    assert "样品记录" in html and "看看" in html

    login_as("manager", off)  # the plugin is not enabled there: its records take no comments
    assert (
        client.post(f"/comments/sample_note/{off.note_id}", data={"body": "x"}).status_code == 404
    )


@pytest.mark.parametrize(
    "path",
    [
        "/comments/nonsense/1",
        "/comments/customer/999999",
        "/comments/customer/99999999999",
        "/comments/notification/1",
        "/comments/membership/1",
    ],
)
def test_a_bad_subject_is_not_found(app, client, acme, login_as, path):
    login_as("manager", acme)
    assert client.post(path, data={"body": "hello"}).status_code == 404
    assert client.get(path).status_code == 404


def test_another_companys_record_is_not_found(app, db, client, acme, company, login_as):
    login_as("manager", company())
    response = client.post(f"/comments/customer/{acme.customer_id}", data={"body": "偷看"})
    assert response.status_code == 404
    with company_scope(acme.id):
        assert db.session.scalars(select(Comment)).first() is None


@pytest.mark.parametrize("body", ["", "   \n  ", "x" * 5001])
def test_an_empty_or_overlong_body_is_refused_at_the_field(app, db, client, acme, login_as, body):
    login_as("manager", acme)
    response = client.post(f"/comments/customer/{acme.customer_id}", data={"body": body})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert re.search(r'class="error" data-field="body"', html)
    with company_scope(acme.id):
        assert db.session.scalars(select(Comment)).first() is None


def test_viewers_read_but_do_not_write(app, client, acme, login_as):
    login_as("viewer", acme)
    assert client.get(f"/comments/customer/{acme.customer_id}").status_code == 200
    response = client.post(f"/comments/customer/{acme.customer_id}", data={"body": "hi"})
    assert response.status_code == 403


def test_the_thread_partial_renders_inside_a_page(app, db, client, acme, login_as):
    from flask import render_template_string

    me = login_as("manager", acme)
    client.post(f"/comments/customer/{acme.customer_id}", data={"body": "第一条评论"})
    with client.application.test_request_context(f"/customers/{acme.customer_id}?tab=x"):
        from flask import g

        from core.tenancy import activate, reset

        token = activate(acme.id)
        try:
            g.membership = db.session.scalar(select(Membership).where(Membership.user_id == me.id))
            html = render_template_string(
                '{% set subject_type = "customer" %}{% set subject_id = cid %}'
                '{% include "comments/_thread.html" ignore missing with context %}',
                cid=acme.customer_id,
            )
        finally:
            reset(token)
    assert "第一条评论" in html
    assert f'action="/comments/customer/{acme.customer_id}"' in html
    assert f'value="/customers/{acme.customer_id}?tab=x"' in html


def test_next_never_leaves_the_site(app, client, acme, login_as):
    login_as("manager", acme)
    response = client.post(
        f"/comments/customer/{acme.customer_id}",
        data={"body": "ok", "next": "https://evil.example/"},
    )
    assert response.headers["Location"].startswith(f"/customers/{acme.customer_id}#comment-")
