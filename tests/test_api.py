"""The JSON API as an integration sees it: tokens, tenancy, writes, versions, bulk, errors."""

from __future__ import annotations

import types
from datetime import UTC, datetime

import pytest

from core import tokens
from core.models import Channel, Contact, Customer, Interaction, ServiceTicket
from core.tenancy import company_scope

pytestmark = pytest.mark.guanxi_plugins("tests.sample_plugin")


@pytest.fixture
def token(app, db, make_user):
    """``token(role, company)``: a member with a fresh token; returns (user, headers)."""

    def factory(role, company):
        user = make_user(role, company)
        _row, secret = tokens.issue(user, company.id, f"{role} token")
        db.session.commit()
        return user, {"Authorization": f"Bearer {secret}"}

    return factory


@pytest.fixture
def world(app, db, company, token):
    """Company A (sample plugin on) and B (off), each with one record of every kind."""
    out = {}
    for code, plugins in (("a", ("sample",)), ("b", ())):
        co = company(code=code, plugins=plugins)
        admin, headers = token("admin", co)
        with company_scope(co.id):
            customer = Customer(name=f"客户{code}", code=f"C-{code}", owner_id=admin.id)
            channel = Channel(name=f"渠道{code}")
            db.session.add_all([customer, channel])
            db.session.flush()
            contact = Contact(customer_id=customer.id, name=f"联系人{code}")
            ticket = ServiceTicket(customer_id=customer.id, subject=f"工单{code}")
            interaction = Interaction(
                customer_id=customer.id, user_id=admin.id, kind="call", purpose="p"
            )
            db.session.add_all([contact, ticket, interaction])
            db.session.commit()
        out[code] = {
            "company": co,
            "admin": admin,
            "headers": headers,
            "ids": {
                "customers": customer.id,
                "contacts": contact.id,
                "channels": channel.id,
                "tickets": ticket.id,
                "interactions": interaction.id,
                "users": admin.id,
            },
        }
    return out


def fresh(app):
    app.test_client_class = None
    from core.testing import _client_class

    app.test_client_class = _client_class()
    return app.test_client()


RESOURCES = ("customers", "contacts", "channels", "tickets", "interactions", "users")


@pytest.mark.parametrize("resource", RESOURCES)
def test_a_token_of_company_a_never_reaches_a_record_of_company_b(app, world, resource):
    client = fresh(app)
    a, b = world["a"], world["b"]
    theirs = b["ids"][resource]
    got = client.get(f"/api/v1/{resource}/{theirs}", headers=a["headers"])
    assert got.status_code == 404
    assert got.get_json()["error"]["code"] == "not_found"
    listed = client.get(f"/api/v1/{resource}?limit=500", headers=a["headers"]).get_json()
    assert theirs not in [r["id"] for r in listed["data"]]
    assert a["ids"][resource] in [r["id"] for r in listed["data"]]
    if resource != "users":
        changed = client.patch(
            f"/api/v1/{resource}/{theirs}", json={"notes": "x"}, headers=a["headers"]
        )
        assert changed.status_code == 404
    moved = client.post(
        f"/api/v1/tickets/{b['ids']['tickets']}/transitions/start", json={}, headers=a["headers"]
    )
    assert moved.status_code == 404
    assert (
        client.get(
            f"/api/v1/tickets/{b['ids']['tickets']}/transitions", headers=a["headers"]
        ).status_code
        == 404
    )


def test_records_of_company_b_cannot_be_referenced_from_company_a(app, world):
    client = fresh(app)
    a, b = world["a"], world["b"]
    answer = client.post(
        "/api/v1/contacts",
        json={"customer_id": b["ids"]["customers"], "name": "偷渡"},
        headers=a["headers"],
    )
    assert answer.status_code == 422
    assert "customer_id" in answer.get_json()["error"]["fields"]


def test_a_revoked_or_unknown_token_is_refused(app, db, world):
    client = fresh(app)
    a = world["a"]
    assert client.get("/api/v1/customers", headers=a["headers"]).status_code == 200
    row = tokens.authenticate(a["headers"]["Authorization"].split()[1])
    tokens.revoke(row, a["admin"])
    db.session.commit()
    refused = client.get("/api/v1/customers", headers=a["headers"])
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthorized"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert (
        client.get("/api/v1/customers", headers={"Authorization": "Bearer nope"}).status_code == 401
    )
    assert client.get("/api/v1/customers").status_code == 401


def test_a_token_does_not_open_web_pages(app, world):
    client = fresh(app)
    page = client.get("/customers/", headers=world["a"]["headers"])
    assert page.status_code in (302, 401)


def test_a_viewer_token_reads_but_cannot_write(app, world, token):
    client = fresh(app)
    a = world["a"]
    _viewer, headers = token("viewer", a["company"])
    assert client.get("/api/v1/customers", headers=headers).status_code == 200
    for resource, body in (
        ("customers", {"name": "新客户"}),
        ("contacts", {"customer_id": a["ids"]["customers"], "name": "王"}),
        ("tickets", {"customer_id": a["ids"]["customers"], "subject": "问"}),
        ("interactions", {"customer_id": a["ids"]["customers"], "kind": "call"}),
        ("channels", {"name": "新渠道"}),
    ):
        answer = client.post(f"/api/v1/{resource}", json=body, headers=headers)
        assert answer.status_code == 403, resource
        assert answer.get_json()["error"]["code"] == "forbidden"
        record = a["ids"][resource]
        assert (
            client.patch(f"/api/v1/{resource}/{record}", json={}, headers=headers).status_code
            == 403
        )
    moved = client.post(f"/api/v1/tickets/{a['ids']['tickets']}/transitions/start", headers=headers)
    assert moved.status_code == 403
    assert (
        client.post(
            "/api/v1/customers/bulk", json={"items": [{"name": "x"}]}, headers=headers
        ).status_code
        == 403
    )


def test_a_token_acts_with_its_users_record_rule(app, db, world, token, make_user):
    client = fresh(app)
    a = world["a"]
    rep, headers = token("sales_rep", a["company"])
    with company_scope(a["company"].id):
        own = Customer(name="我的客户", owner_id=rep.id)
        db.session.add(own)
        db.session.commit()
    names = [r["name"] for r in client.get("/api/v1/customers", headers=headers).get_json()["data"]]
    assert names == ["我的客户"]
    hidden = client.get(f"/api/v1/customers/{a['ids']['customers']}", headers=headers)
    assert hidden.status_code == 403 and hidden.get_json()["error"]["code"] == "record_rule"
    # Records that belong to a hidden customer are hidden with it.
    contacts = client.get("/api/v1/contacts", headers=headers).get_json()["data"]
    assert contacts == []
    assert client.get(f"/api/v1/tickets/{a['ids']['tickets']}", headers=headers).status_code == 403


def test_extension_fields_appear_only_where_the_plugin_is_enabled(app, world):
    client = fresh(app)
    a, b = world["a"], world["b"]
    mine = client.get(f"/api/v1/customers/{a['ids']['customers']}", headers=a["headers"]).get_json()
    theirs = client.get(
        f"/api/v1/customers/{b['ids']['customers']}", headers=b["headers"]
    ).get_json()
    assert "sample__hospital_beds" in mine and mine["sample__hospital_beds"] is None
    assert "sample__hospital_beds" not in theirs
    made = client.post(
        "/api/v1/customers",
        json={"name": "协和", "sample__hospital_beds": 1200, "sample__grade": "a"},
        headers=a["headers"],
    )
    assert made.status_code == 201 and made.get_json()["sample__hospital_beds"] == 1200
    bad = client.post(
        "/api/v1/customers",
        json={"name": "x", "sample__hospital_beds": 99999},
        headers=a["headers"],
    )
    assert bad.status_code == 422 and "sample__hospital_beds" in bad.get_json()["error"]["fields"]
    refused = client.post(
        "/api/v1/customers", json={"name": "x", "sample__hospital_beds": 5}, headers=b["headers"]
    )
    assert refused.status_code == 422
    assert refused.get_json()["error"]["fields"]["sample__hospital_beds"] == ["Unknown field."]
    doc_a = client.get("/api/v1/openapi.json", headers=a["headers"]).get_json()
    doc_b = client.get("/api/v1/openapi.json", headers=b["headers"]).get_json()
    assert "sample__hospital_beds" in doc_a["components"]["schemas"]["Customers"]["properties"]
    assert "sample__hospital_beds" not in doc_b["components"]["schemas"]["Customers"]["properties"]


def test_a_plugins_records_are_served_only_to_companies_that_enabled_it(app, db, world):
    client = fresh(app)
    a, b = world["a"], world["b"]
    made = client.post("/api/v1/sample_notes", json={"text": "第一条"}, headers=a["headers"])
    assert made.status_code == 201
    note = made.get_json()
    assert note["state"] == "draft"
    published = client.post(
        f"/api/v1/sample_notes/{note['id']}/transitions/publish", headers=a["headers"]
    )
    assert published.status_code == 200 and published.get_json()["state"] == "published"
    again = client.post(
        f"/api/v1/sample_notes/{note['id']}/transitions/publish", headers=a["headers"]
    )
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "illegal_transition"
    state = client.patch(
        f"/api/v1/sample_notes/{note['id']}", json={"state": "draft"}, headers=a["headers"]
    )
    assert state.status_code == 200 and state.get_json()["state"] == "published"  # read-only
    assert client.get("/api/v1/sample_notes", headers=b["headers"]).status_code == 404
    assert (
        "/api/v1/sample_notes"
        not in client.get("/api/v1/openapi.json", headers=b["headers"]).get_json()["paths"]
    )


def test_a_stale_write_is_refused(app, world):
    client = fresh(app)
    a = world["a"]
    url = f"/api/v1/customers/{a['ids']['customers']}"
    read = client.get(url, headers=a["headers"])
    etag = read.headers["ETag"]
    first = client.patch(url, json={"region": "上海"}, headers={**a["headers"], "If-Match": etag})
    assert first.status_code == 200 and first.headers["ETag"] != etag
    second = client.patch(url, json={"region": "北京"}, headers={**a["headers"], "If-Match": etag})
    assert second.status_code == 412
    assert second.get_json()["error"]["code"] == "precondition_failed"
    body_version = client.patch(
        url, json={"region": "北京", "version": read.get_json()["version"]}, headers=a["headers"]
    )
    assert body_version.status_code == 409
    assert client.get(url, headers=a["headers"]).get_json()["region"] == "上海"


def test_bulk_upsert_is_all_or_nothing_with_per_item_errors(app, db, world):
    client = fresh(app)
    a = world["a"]
    bad = client.post(
        "/api/v1/customers/bulk",
        json={"items": [{"code": "N-1", "name": "新一"}, {"code": "N-2", "name": ""}, {"name": 5}]},
        headers=a["headers"],
    )
    assert bad.status_code == 422
    items = bad.get_json()["error"]["fields"]["items"]
    assert set(items) == {"1", "2"} and "name" in items["1"]
    with company_scope(a["company"].id):
        assert db.session.query(Customer).filter_by(code="N-1").count() == 0
    good = client.post(
        "/api/v1/customers/bulk",
        json={"items": [{"code": "N-1", "name": "新一"}, {"code": "C-a", "region": "广州"}]},
        headers=a["headers"],
    )
    assert good.status_code == 200, good.get_json()
    result = good.get_json()
    assert (result["created"], result["updated"]) == (1, 1)
    assert result["items"][1] == {"id": a["ids"]["customers"], "result": "updated"}
    updated = client.get(f"/api/v1/customers/{a['ids']['customers']}", headers=a["headers"])
    assert updated.get_json()["region"] == "广州" and updated.get_json()["name"] == "客户a"


def test_bulk_interactions_upsert_on_external_id(app, db, world):
    client = fresh(app)
    a = world["a"]
    call = {
        "external_id": "cc-991",
        "customer_id": a["ids"]["customers"],
        "kind": "call",
        "occurred_at": "2026-11-20T09:30:00+08:00",
        "purpose": "回访",
    }
    for _ in range(2):
        answer = client.post(
            "/api/v1/interactions/bulk", json={"items": [call]}, headers=a["headers"]
        )
        assert answer.status_code == 200, answer.get_json()
    with company_scope(a["company"].id):
        rows = db.session.query(Interaction).filter_by(external_id="cc-991").all()
    assert len(rows) == 1
    assert rows[0].occurred_at == datetime(2026, 11, 20, 1, 30, tzinfo=UTC)


def test_ticket_transitions_through_the_api(app, world):
    client = fresh(app)
    a = world["a"]
    url = f"/api/v1/tickets/{a['ids']['tickets']}"
    offered = client.get(url + "/transitions", headers=a["headers"]).get_json()
    assert offered["state"] == "new" and offered["transitions"]
    name = offered["transitions"][0]["name"]
    taken = client.post(f"{url}/transitions/{name}", json={"comment": "好"}, headers=a["headers"])
    assert taken.status_code in (200, 422), taken.get_json()
    unknown = client.post(f"{url}/transitions/fly", headers=a["headers"])
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status", "code"),
    [
        (
            "post",
            "/api/v1/customers",
            {"data": "{not json", "content_type": "application/json"},
            400,
            "bad_request",
        ),
        (
            "post",
            "/api/v1/customers",
            {"data": "name=x", "content_type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        ("post", "/api/v1/customers", {"json": [1, 2]}, 422, "invalid"),
        ("post", "/api/v1/customers", {"json": {"name": "a\x00b"}}, 422, "invalid"),
        ("post", "/api/v1/customers", {"json": {"name": "x", "owner_id": 2**40}}, 422, "invalid"),
        ("post", "/api/v1/customers", {"json": {"name": "x", "revenue": "1e30"}}, 422, "invalid"),
        ("post", "/api/v1/customers", {"json": {"name": "x", "surprise": 1}}, 422, "invalid"),
        ("get", "/api/v1/customers?limit=0", {}, 400, "bad_parameter"),
        ("get", "/api/v1/customers?after=garbage", {}, 400, "bad_parameter"),
        ("get", "/api/v1/customers?colour=red", {}, 400, "bad_parameter"),
        ("get", "/api/v1/customers?owner_id=abc", {}, 400, "bad_parameter"),
        ("get", "/api/v1/customers/99999999999", {}, 404, "not_found"),
        ("delete", "/api/v1/customers/1", {}, 405, "method_not_allowed"),
        ("get", "/api/v1/nowhere", {}, 404, "not_found"),
        ("post", "/api/v1/users", {"json": {}}, 405, "method_not_allowed"),
    ],
)
def test_bad_input_gets_one_error_shape_and_never_a_500(
    app, world, method, url, kwargs, status, code
):
    client = fresh(app)
    answer = getattr(client, method)(url, headers=world["a"]["headers"], **kwargs)
    assert answer.status_code == status, answer.get_data(as_text=True)
    error = answer.get_json()["error"]
    assert error["code"] == code and error["message"]


def test_a_too_large_body_is_refused(app, world):
    client = fresh(app)
    app.config["MAX_CONTENT_LENGTH"] = 1000
    answer = client.post(
        "/api/v1/customers", json={"name": "x" * 5000}, headers=world["a"]["headers"]
    )
    assert answer.status_code == 413
    assert answer.get_json()["error"]["code"] == "payload_too_large"


def test_requests_beyond_the_rate_limit_get_429(make_app, db):
    from core.models import Company, Membership, User
    from core.tenancy import unscoped

    app = make_app(API_RATE_LIMIT="3/minute")
    with app.app_context():
        co = Company(code="rl", name="限流")
        user = User(email="rl@example.com", name="rl")
        user.set_password("x")
        db.session.add_all([co, user])
        db.session.flush()
        with unscoped():
            db.session.add(Membership(user_id=user.id, company_id=co.id, role="admin"))
        _t, secret = tokens.issue(user, co.id, "rl")
        db.session.commit()
        client = fresh(app)
        headers = {"Authorization": f"Bearer {secret}"}
        codes = [client.get("/api/v1/customers", headers=headers).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = client.get("/api/v1/customers", headers=headers)
        assert limited.get_json()["error"]["code"] == "rate_limited"
        assert "Retry-After" in limited.headers
        db.session.remove()
        from core.testing import _wipe

        _wipe(db.engine)


def test_list_queries_do_not_grow_with_the_page_size(app, db, world):
    from core.testing import QueryCounter

    client = fresh(app)
    a = world["a"]
    with company_scope(a["company"].id):
        db.session.add_all(Customer(name=f"批量{i}", owner_id=a["admin"].id) for i in range(60))
        db.session.commit()
    client.get("/api/v1/customers", headers=a["headers"])  # the token's last-used stamp
    counts = []
    for size in (5, 50):
        with QueryCounter(db.engine) as counter:
            answer = client.get(f"/api/v1/customers?limit={size}", headers=a["headers"])
        assert len(answer.get_json()["data"]) == size
        counts.append(counter.count)
    assert counts[0] == counts[1]


def test_keyset_pages_cover_every_record_once(app, db, world):
    client = fresh(app)
    a = world["a"]
    with company_scope(a["company"].id):
        customer_id = a["ids"]["customers"]
        db.session.add_all(Contact(customer_id=customer_id, name=f"人{i:02d}") for i in range(23))
        db.session.commit()
    seen, after = [], None
    while True:
        url = "/api/v1/contacts?limit=7&sort=name" + (f"&after={after}" if after else "")
        page = client.get(url, headers=a["headers"]).get_json()
        seen += [r["name"] for r in page["data"]]
        after = page["next_after"]
        if not after:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 24


def test_a_searchable_resource_without_a_search_stops_the_start():
    from core.api.resources import Resource
    from core.plugins import Manifest, PluginError, PluginManager, hookimpl

    class Notes(Resource):
        name = "broken_notes"
        model = Customer
        searchable = True

    module = types.ModuleType("broken_plugin")
    module.manifest = Manifest(name="broken", label="Broken", label_zh="坏", version="0.1.0")
    module.guanxi_api_resources = hookimpl(lambda: [Notes()])
    with pytest.raises(PluginError, match="does not define search"):
        PluginManager().install([module])
