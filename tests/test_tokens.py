"""Personal API tokens: shown once, stored hashed, refused when revoked, expired or orphaned;
listed and revoked on the account page and from the command line."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event, inspect, select

from core import tokens
from core.db import utcnow
from core.models import ApiToken, AuditLog, Membership
from core.tenancy import company_scope, unscoped

SECRET = re.compile(r"gx_[A-Za-z0-9_-]{43}")


def new_token(db, user, company, name="脚本", **kwargs):
    token, secret = tokens.issue(user, company.id, name, **kwargs)
    db.session.commit()
    return token, secret


def every_stored_value(db) -> str:
    """Every row of every table in the database, as one string."""
    parts = []
    existing = set(inspect(db.engine).get_table_names())
    with unscoped():
        for table in (t for t in db.metadata.sorted_tables if t.name in existing):
            parts.extend(repr(tuple(row)) for row in db.session.execute(table.select()))
    return "\n".join(parts)


def row_ids(html: str, table_id: str) -> set[int]:
    body = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return {int(n) for n in re.findall(r'data-token-id="(\d+)"', body)}


# -- the engine ---------------------------------------------------------------------------------


def test_the_secret_is_returned_once_and_only_its_hash_is_stored(db, company, make_user):
    acme = company()
    user = make_user("sales_rep", acme)
    token, secret = new_token(db, user, acme, name="  ERP 同步  ")
    assert SECRET.fullmatch(secret)
    assert token.name == "ERP 同步"
    assert token.prefix == secret[:10] and token.token_hash == tokens.digest(secret)
    stored = every_stored_value(db)
    assert secret not in stored and secret[10:] not in stored
    assert token.token_hash in stored
    with company_scope(acme.id):
        logged = db.session.scalar(select(AuditLog).where(AuditLog.entity_type == "api_token"))
    assert logged.action == "create" and logged.data["prefix"] == token.prefix
    _, other = new_token(db, user, acme)
    assert other != secret


def test_a_fresh_token_authenticates_outside_any_company_with_its_user(db, company, make_user):
    acme = company()
    user = make_user("viewer", acme)
    token, secret = new_token(db, user, acme)
    token_id, company_id, email = token.id, acme.id, user.email
    db.session.expunge_all()
    found = tokens.authenticate(secret)
    assert found is not None and found.id == token_id and found.company_id == company_id
    assert "user" in found.__dict__ and found.user.email == email  # loaded eagerly


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "gx_",
        "gx_nope",
        "Bearer gx_x",
        "gx_" + "a" * 43,
        "gx_" + "a" * 100_000,
        "gx_令牌令牌",
        "gx_\x00\x00",
        "\ud800",
        "gx_' OR 1=1 --",
        None,
        b"gx_bytes",
    ],
)
def test_garbage_is_refused_without_an_error(db, company, make_user, garbage):
    acme = company()
    new_token(db, make_user("admin", acme), acme)
    assert tokens.authenticate(garbage) is None


def test_revoked_and_expired_tokens_are_refused(db, company, make_user):
    acme = company()
    user = make_user("admin", acme)
    token, secret = new_token(db, user, acme)
    assert tokens.revoke(token, user) is True
    db.session.commit()
    assert tokens.authenticate(secret) is None
    assert tokens.revoke(token, user) is False  # once is enough

    short, short_secret = new_token(db, user, acme, expires_at=utcnow() + timedelta(days=1))
    assert tokens.authenticate(short_secret) is not None
    with company_scope(acme.id):
        short.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert tokens.authenticate(short_secret) is None
    with company_scope(acme.id):
        assert tokens.status(short) == "expired" and tokens.status(token) == "revoked"


def test_a_token_dies_with_the_membership_or_the_user(db, company, make_user):
    acme, other = company(), company()
    user = make_user("sales_rep", acme)
    with unscoped():
        db.session.add(Membership(user_id=user.id, company_id=other.id, role="viewer"))
        db.session.commit()
    _, in_acme = new_token(db, user, acme)
    _, in_other = new_token(db, user, other)
    with unscoped():
        db.session.delete(
            db.session.scalar(
                select(Membership).where(
                    Membership.user_id == user.id, Membership.company_id == other.id
                )
            )
        )
        db.session.commit()
    assert tokens.authenticate(in_other) is None  # removed from that company
    assert tokens.authenticate(in_acme) is not None  # still a member here
    user.active = False
    db.session.commit()
    assert tokens.authenticate(in_acme) is None


def test_issue_refuses_bad_names_expiries_and_strangers(db, company, make_user):
    acme, other = company(), company()
    user = make_user("viewer", acme)
    for bad in ("", "   ", "a\x00b", "two\nlines", "x" * 81):
        with pytest.raises(tokens.TokenError) as refused:
            tokens.issue(user, acme.id, bad)
        assert refused.value.field == "name"
    with pytest.raises(tokens.TokenError) as refused:
        tokens.issue(user, acme.id, "ok", expires_at=utcnow() - timedelta(minutes=1))
    assert refused.value.field == "expires_at"
    with pytest.raises(tokens.TokenError) as refused:
        tokens.issue(user, other.id, "ok")
    assert refused.value.field == "user"
    assert isinstance(refused.value, ValueError)
    db.session.rollback()
    with unscoped():
        assert db.session.scalar(select(ApiToken)) is None


def test_last_used_is_written_at_most_once_a_minute(app, db, company, make_user):
    acme = company()
    user = make_user("viewer", acme)
    token, secret = new_token(db, user, acme)
    assert token.last_used_at is None
    first = tokens.authenticate(secret).last_used_at
    assert first is not None

    writes = []

    def spy(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("UPDATE"):
            writes.append(statement)

    event.listen(db.engine, "before_cursor_execute", spy)
    try:
        for _ in range(3):
            assert tokens.authenticate(secret) is not None
    finally:
        event.remove(db.engine, "before_cursor_execute", spy)
    assert writes == []
    db.session.expire_all()
    with company_scope(acme.id):
        assert db.session.get(ApiToken, token.id).last_used_at == first
        db.session.get(ApiToken, token.id).last_used_at = utcnow() - timedelta(minutes=2)
        db.session.commit()
    later = tokens.authenticate(secret).last_used_at
    assert later > first
    db.session.expire_all()
    with company_scope(acme.id):
        assert db.session.get(ApiToken, token.id).last_used_at == later  # committed


def test_lists_keep_to_the_user_and_the_company(db, company, make_user):
    acme, other = company(), company()
    alice, bob = make_user("sales_rep", acme), make_user("sales_rep", acme)
    stranger = make_user("admin", other)
    a1, _ = new_token(db, alice, acme, name="one")
    a2, _ = new_token(db, alice, acme, name="two")
    b1, _ = new_token(db, bob, acme)
    new_token(db, stranger, other)
    with company_scope(acme.id):
        assert [t.id for t in tokens.for_user(alice.id)] == [a2.id, a1.id]
        assert {t.id for t in tokens.for_company()} == {a1.id, a2.id, b1.id}
        assert tokens.for_user(stranger.id) == []


# -- the account page -----------------------------------------------------------------------------


def test_creating_on_the_page_shows_the_secret_once(client, db, login_as):
    user = login_as("sales_rep")
    page = client.get("/account/tokens/")
    assert page.status_code == 200
    assert 'href="/developer/api"' in page.text
    assert 'href="/account/tokens/"' in page.text  # the "API" link in the header
    created = client.post("/account/tokens/", data={"name": "Excel 宏", "days": "30"})
    assert created.status_code == 200
    assert created.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="new-token-secret">([^<]+)<', created.text).group(1)
    assert SECRET.fullmatch(secret)
    token = tokens.authenticate(secret)
    assert token.user_id == user.id and token.name == "Excel 宏"
    assert timedelta(days=29) < token.expires_at - utcnow() <= timedelta(days=30)
    again = client.get("/account/tokens/")
    assert secret not in again.text and "new-token-secret" not in again.text
    assert token.prefix in again.text and row_ids(again.text, "own-tokens") == {token.id}
    assert 'id="company-tokens"' not in again.text  # not an admin


@pytest.mark.parametrize(
    "form",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 81},
        {"name": "a\x00b"},
        {"name": "ok", "days": "0"},
        {"name": "ok", "days": "3651"},
        {"name": "ok", "days": "abc"},
        {"name": "ok", "days": "99999999999999999999999"},
        {"name": "ok", "days": "-5"},
    ],
)
def test_bad_input_is_a_form_message(client, db, login_as, form):
    login_as("viewer")
    response = client.post("/account/tokens/", data=form)
    assert response.status_code == 422
    assert 'class="error"' in response.text and "new-token-secret" not in response.text
    with unscoped():
        assert db.session.scalar(select(ApiToken)) is None


def test_the_owner_revokes_on_the_page(client, db, company, login_as):
    acme = company()
    user = login_as("viewer", company=acme)
    token, secret = new_token(db, user, acme)
    response = client.post(f"/account/tokens/{token.id}/revoke")
    assert response.status_code == 302
    assert tokens.authenticate(secret) is None
    page = client.get("/account/tokens/")
    assert 'data-status="revoked"' in page.text


def test_a_member_cannot_revoke_another_members_token_an_admin_can(
    client, db, company, make_user, login_as
):
    acme, other = company(), company()
    owner = make_user("sales_rep", acme)
    token, secret = new_token(db, owner, acme)
    foreign, foreign_secret = new_token(db, make_user("admin", other), other)

    login_as("sales_rep", company=acme)
    page = client.get("/account/tokens/")
    assert token.id not in row_ids(page.text, "own-tokens")
    assert client.post(f"/account/tokens/{token.id}/revoke").status_code == 403
    assert tokens.authenticate(secret) is not None

    login_as("admin", company=acme)
    page = client.get("/account/tokens/")
    assert row_ids(page.text, "company-tokens") == {token.id}  # never another company's
    assert owner.email in page.text and token.prefix in page.text
    assert foreign.prefix not in page.text
    assert client.post(f"/account/tokens/{foreign.id}/revoke").status_code == 404
    assert client.post(f"/account/tokens/{2**40}/revoke").status_code == 404
    assert tokens.authenticate(foreign_secret) is not None
    assert client.post(f"/account/tokens/{token.id}/revoke").status_code == 302
    assert tokens.authenticate(secret) is None


def test_the_page_needs_a_login_and_a_company(client, db, company, make_user):
    assert client.get("/account/tokens/").status_code == 302  # to the login page
    user = make_user("viewer", company())
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
    assert client.get("/account/tokens/").status_code == 403


# -- the command line -----------------------------------------------------------------------------


def test_tokens_from_the_command_line(app, db, company, make_user):
    from core.cli import main as cli

    acme = company(code="acme")
    user = make_user("manager", acme, email="li@example.com")
    runner = app.test_cli_runner()

    created = runner.invoke(
        cli,
        ["tokens", "create", "--user", "LI@example.com", "--company", "acme", "--name", "ERP"],
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert SECRET.fullmatch(secret) and created.stdout.strip() == secret
    token = tokens.authenticate(secret)
    assert token.user_id == user.id and token.expires_at is None

    args = ["--user", user.email, "--company", "acme", "--name", "x", "--days", "7"]
    dated = runner.invoke(cli, ["tokens", "create", *args])
    assert dated.exit_code == 0, dated.output
    assert tokens.authenticate(dated.stdout.strip()).expires_at is not None

    listed = runner.invoke(cli, ["tokens", "list", "--company", "acme", "--user", user.email])
    assert listed.exit_code == 0, listed.output
    assert token.prefix in listed.output and "ERP" in listed.output
    assert secret not in listed.output and token.token_hash not in listed.output
    assert len(listed.stdout.strip().splitlines()) == 3  # header and two tokens

    revoked = runner.invoke(cli, ["tokens", "revoke", str(token.id)])
    assert revoked.exit_code == 0, revoked.output
    assert tokens.authenticate(secret) is None
    again = runner.invoke(cli, ["tokens", "revoke", str(token.id)])
    assert again.exit_code == 0 and "already" in again.output


def test_the_command_line_names_what_it_does_not_know(app, db, company, make_user):
    from core.cli import main as cli

    company(code="acme")
    other = company(code="other")
    make_user("viewer", other, email="wang@example.com")
    runner = app.test_cli_runner()

    def create(*args):
        return runner.invoke(cli, ["tokens", "create", "--name", "n", *args])

    result = create("--user", "nobody@example.com", "--company", "acme")
    assert result.exit_code != 0 and "no user with e-mail" in result.output
    result = create("--user", "wang@example.com", "--company", "nope")
    assert result.exit_code != 0 and "no company with code 'nope'" in result.output
    result = create("--user", "wang@example.com", "--company", "acme")
    assert result.exit_code != 0 and "user:" in result.output
    result = create("--user", "wang@example.com", "--company", "other", "--days", "0")
    assert result.exit_code != 0
    result = runner.invoke(cli, ["tokens", "revoke", "999999"])
    assert result.exit_code != 0 and "no token with id 999999" in result.output
    result = runner.invoke(cli, ["tokens", "revoke", "abc"])
    assert result.exit_code != 0
    result = runner.invoke(cli, ["tokens", "list", "--user", "nobody@example.com"])
    assert result.exit_code != 0 and "no user with e-mail" in result.output
    with unscoped():
        assert db.session.scalar(select(ApiToken)) is None
