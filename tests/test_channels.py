"""Channels (渠道): the tree with what each channel brings, forms, claims and channel conflict."""

from __future__ import annotations

import re
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from core import channels
from core.models import AuditLog, Channel, ChannelClaim, Customer
from core.tenancy import company_scope
from core.testing import QueryCounter


def rows(html: str) -> list[int]:
    """Channel ids in the order the list shows them."""
    return [int(x) for x in re.findall(r'data-channel="(\d+)"', html)]


def row(html: str, channel_id: int) -> str:
    start = html.index(f'data-channel="{channel_id}"')
    return html[start : html.index("</tr>", start)]


@pytest.fixture
def network(app, db, company):
    """A distributor with a sub-dealer (which has its own sub-dealer) and a second sub-dealer,
    an agent, and customers with revenue."""
    co = company()
    with company_scope(co.id):
        dist = Channel(name="华南经销商", type="distributor", code="D1")
        agent = Channel(name="华东代理", type="agent")
        db.session.add_all([dist, agent])
        db.session.flush()
        sub1 = Channel(name="东区二级", type="distributor", parent_id=dist.id)
        db.session.add(sub1)
        db.session.flush()
        sub1a = Channel(name="东区门店", type="direct", parent_id=sub1.id)
        sub2 = Channel(name="西区二级", type="distributor", parent_id=dist.id)
        db.session.add_all([sub1a, sub2])
        db.session.flush()
        people = {
            "d1": Customer(name="甲公司", code="C-D1", channel_id=dist.id, revenue=Decimal("100")),
            "d2": Customer(name="乙公司", channel_id=dist.id, revenue=None),
            "s1": Customer(
                name="丙公司", code="C-S1", channel_id=sub1.id, revenue=Decimal("250.5")
            ),
            "s1a": Customer(name="丁公司", channel_id=sub1a.id, revenue=Decimal("1000")),
            "a1": Customer(name="戊公司", channel_id=agent.id, revenue=Decimal("7")),
            "free": Customer(name="己先生", code="C-FREE"),
        }
        db.session.add_all(people.values())
        db.session.commit()
        return SimpleNamespace(
            company=co,
            dist=dist.id,
            agent=agent.id,
            sub1=sub1.id,
            sub1a=sub1a.id,
            sub2=sub2.id,
            **{k: v.id for k, v in people.items()},
        )


def claim(db, company, channel_id, customer_id):
    with company_scope(company.id):
        db.session.add(ChannelClaim(channel_id=channel_id, customer_id=customer_id))
        db.session.commit()


# -- the list ---------------------------------------------------------------------------------


def test_list_is_a_tree_with_own_and_network_customers_and_revenue(app, client, login_as, network):
    login_as("sales_rep", network.company)
    response = client.get("/channels/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    n = network
    assert rows(html) == [n.dist, n.sub1, n.sub1a, n.sub2, n.agent]
    assert 'data-depth="2"' in row(html, n.sub1a)
    dist = row(html, n.dist)
    assert ">2</a>" in dist and "¥100.00" in dist  # own: two customers, one without revenue
    assert "4 · ¥1,350.50" in dist  # with sub-channels at any depth
    assert "2 · ¥1,250.50" in row(html, n.sub1)
    assert 'class="num network"></td>' in row(html, n.sub2)  # no sub-channels: no network
    assert "5 个渠道" in html


def test_list_filters_and_bad_arguments(app, client, login_as, network):
    login_as("manager", network.company)
    html = client.get("/channels/?type=agent").get_data(as_text=True)
    assert rows(html) == [network.agent]
    assert rows(client.get("/channels/?q=东区").get_data(as_text=True)) == [
        network.sub1,
        network.sub1a,
    ]
    for bad in ("after=abc", "after=99999999999", "after=-1"):
        response = client.get(f"/channels/?{bad}")
        assert response.status_code == 400
        assert 'data-field="after"' in response.get_data(as_text=True)


def test_keyset_pages_walk_the_tree_once(app, client, login_as, network):
    app.config["LIST_PAGE_SIZE"] = 2
    login_as("manager", network.company)
    seen, url = [], "/channels/"
    for _ in range(5):
        html = client.get(url).get_data(as_text=True)
        seen += rows(html)
        found = re.search(r'class="button next" href="([^"]+)"', html)
        if not found:
            break
        url = found.group(1).replace("&amp;", "&")
    n = network
    assert seen == [n.dist, n.sub1, n.sub1a, n.sub2, n.agent]
    assert "5 个渠道" in html


def test_list_queries_do_not_grow_with_the_number_of_channels(app, db, client, login_as, network):
    login_as("manager", network.company)
    client.get("/channels/")
    db.session.expire_all()
    with QueryCounter(db.engine) as few:
        assert client.get("/channels/").status_code == 200
    with company_scope(network.company.id):
        for i in range(30):
            parent = Channel(name=f"省代{i:02d}", type="agent")
            db.session.add(parent)
            db.session.flush()
            child = Channel(name=f"市代{i:02d}", type="agent", parent_id=parent.id)
            db.session.add(child)
            db.session.flush()
            db.session.add(Customer(name=f"客户{i}", channel_id=child.id, revenue=10))
            db.session.add(ChannelClaim(channel_id=parent.id, customer_id=network.d1))
        db.session.commit()
    db.session.expire_all()
    with QueryCounter(db.engine) as many:
        html = client.get("/channels/").get_data(as_text=True)
    assert many.count == few.count
    assert len(rows(html)) == 50  # a full page


def test_another_companys_channels_are_not_listed(app, db, client, company, login_as, network):
    login_as("manager", company())
    assert rows(client.get("/channels/").get_data(as_text=True)) == []
    assert client.get(f"/channels/{network.dist}").status_code == 404


# -- conflict ---------------------------------------------------------------------------------


def test_conflict_rule(app, db, network):
    n = network
    claim(db, n.company, n.dist, n.d1)  # the assigned channel claims its own customer: fine
    claim(db, n.company, n.agent, n.s1)  # another channel claims sub1's customer: conflict
    claim(db, n.company, n.agent, n.free)  # one claim on an unassigned customer: fine
    claim(db, n.company, n.sub2, n.free)  # a second channel claims it too: conflict
    with company_scope(n.company.id):
        found = channels.conflicts_for([n.d1, n.s1, n.free, n.a1])
        assert set(found) == {n.s1, n.free}
        assert {c.id for c in found[n.s1]} == {n.sub1, n.agent}
        assert {c.id for c in found[n.free]} == {n.agent, n.sub2}
        assert channels.conflict_counts([n.agent, n.sub1, n.dist]) == {n.agent: 2, n.sub1: 1}
        # a terminated channel's claims stop counting
        db.session.get(Channel, n.sub2).status = "terminated"
        db.session.commit()
        assert set(channels.conflicts_for([n.s1, n.free])) == {n.s1}


def test_conflicts_are_flagged_on_list_detail_and_customer_page(app, db, client, login_as, network):
    n = network
    claim(db, n.company, n.agent, n.s1)
    login_as("viewer", n.company)
    client.post("/language/en")
    html = client.get("/channels/").get_data(as_text=True)
    assert 'data-conflicts="1"' in row(html, n.agent)
    assert 'data-conflicts="1"' in row(html, n.sub1)
    assert "data-conflicts" not in row(html, n.dist)
    detail = client.get(f"/channels/{n.agent}").get_data(as_text=True)
    assert "1 in conflict" in detail and f"/channels/conflicts?channel={n.agent}" in detail
    customer = client.get(f"/customers/{n.s1}").get_data(as_text=True)
    assert "channel conflict" in customer and "华东代理" in customer and "东区二级" in customer
    calm = client.get(f"/customers/{n.d1}").get_data(as_text=True)
    assert "华南经销商" in calm and "channel conflict" not in calm


def test_conflicts_view_lists_customers_with_their_channels(app, db, client, login_as, network):
    n = network
    claim(db, n.company, n.agent, n.s1)
    claim(db, n.company, n.agent, n.free)
    claim(db, n.company, n.sub2, n.free)
    login_as("manager", n.company)
    html = client.get("/channels/conflicts").get_data(as_text=True)
    listed = [int(x) for x in re.findall(r'data-customer="(\d+)"', html)]
    assert listed == [n.free, n.s1]  # newest first
    s1 = html[html.index(f'data-customer="{n.s1}"') :]
    s1 = s1[: s1.index("</tr>")]
    assert "东区二级" in s1 and "华东代理" in s1  # assigned channel and claimant
    only = client.get(f"/channels/conflicts?channel={n.sub2}").get_data(as_text=True)
    assert [int(x) for x in re.findall(r'data-customer="(\d+)"', only)] == [n.free]
    assert client.get("/channels/conflicts?channel=abc").status_code == 400
    assert client.get("/channels/conflicts?after=x").status_code == 400


# -- forms ------------------------------------------------------------------------------------


def test_create_and_edit_a_channel(app, db, client, login_as, network):
    login_as("manager", network.company)
    form = client.get("/channels/new").get_data(as_text=True)
    assert "华南经销商" in form and "\u3000东区二级" in form  # parents in tree order
    response = client.post(
        "/channels/new",
        data={
            "name": "南区二级",
            "code": "D1-3",
            "type": "distributor",
            "parent_id": str(network.dist),
            "territory": "深圳市",
            "commission_rate": "7.5",
            "credit_limit": "300000",
            "status": "active",
        },
    )
    assert response.status_code == 302
    with company_scope(network.company.id):
        made = db.session.scalars(select(Channel).where(Channel.code == "D1-3")).one()
        assert made.parent_id == network.dist and made.commission_rate == Decimal("7.5")
        assert db.session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.entity_type == "channel")
        )
        made_id = made.id
    detail = client.get(f"/channels/{network.dist}").get_data(as_text=True)
    assert "南区二级" in detail  # among the sub-channels
    response = client.post(
        f"/channels/{made_id}/edit",
        data={
            "name": "南区二级",
            "type": "agent",
            "parent_id": "",
            "commission_rate": "",
            "credit_limit": "",
            "status": "suspended",
        },
    )
    assert response.status_code == 302
    with company_scope(network.company.id):
        made = db.session.get(Channel, made_id)
        assert (made.parent_id, made.type, made.status) == (None, "agent", "suspended")
        assert made.commission_rate is None


@pytest.mark.parametrize(
    "change, field",
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"type": "spaceship"}, "type"),
        ({"status": "sleeping"}, "status"),
        ({"commission_rate": "101"}, "commission_rate"),
        ({"commission_rate": "-1"}, "commission_rate"),
        ({"commission_rate": "abc"}, "commission_rate"),
        ({"commission_rate": "NaN"}, "commission_rate"),
        ({"commission_rate": "Infinity"}, "commission_rate"),
        ({"commission_rate": "1.234"}, "commission_rate"),
        ({"credit_limit": "-0.01"}, "credit_limit"),
        ({"credit_limit": "1e20"}, "credit_limit"),
        ({"credit_limit": "sNaN"}, "credit_limit"),
        ({"parent_id": "abc"}, "parent_id"),
        ({"parent_id": "99999999999999"}, "parent_id"),
        ({"parent_id": "987654"}, "parent_id"),
    ],
)
def test_bad_values_are_refused_at_the_field(app, db, client, login_as, network, change, field):
    login_as("admin", network.company)
    data = {"name": "新渠道", "type": "agent", "status": "active", **change}
    response = client.post("/channels/new", data=data)
    assert response.status_code == 422
    assert f'data-field="{field}"' in response.get_data(as_text=True)
    with company_scope(network.company.id):
        assert db.session.scalar(select(func.count()).select_from(Channel)) == 5


def test_a_parent_must_not_make_a_cycle_or_cross_companies(
    app, db, client, company, login_as, network
):
    other = company()
    with company_scope(other.id):
        foreign = Channel(name="别家渠道", type="agent")
        db.session.add(foreign)
        db.session.commit()
        foreign_id = foreign.id
    login_as("manager", network.company)
    client.post("/language/en")
    base = {"name": "华南经销商", "type": "distributor", "status": "active"}
    for parent, message in (
        (network.dist, "cannot sit under itself"),
        (network.sub1a, "cannot sit under itself"),  # a grandchild
        (foreign_id, "Choose a channel of this company"),
    ):
        response = client.post(
            f"/channels/{network.dist}/edit", data={**base, "parent_id": str(parent)}
        )
        assert response.status_code == 422
        html = response.get_data(as_text=True)
        assert 'data-field="parent_id"' in html and message in html
    form = client.get(f"/channels/{network.sub1}/edit").get_data(as_text=True)
    assert "东区门店" not in form.split('name="parent_id"')[1].split("</select>")[0]
    with company_scope(network.company.id):
        assert db.session.get(Channel, network.dist).parent_id is None


def test_only_admins_and_managers_change_channels(app, client, login_as, network):
    for role in ("viewer", "sales_rep", "service_agent"):
        login_as(role, network.company)
        assert client.get("/channels/").status_code == 200
        assert client.get(f"/channels/{network.dist}").status_code == 200
        assert client.get("/channels/new").status_code == 403
        assert client.post(f"/channels/{network.dist}/edit", data={}).status_code == 403
        response = client.post(f"/channels/{network.dist}/claims", data={"customer": "C-S1"})
        assert response.status_code == 403


@pytest.mark.guanxi_plugins("tests.sample_plugin")
def test_plugin_channel_types_and_fields_for_companies_that_enabled_the_plugin(
    app, db, client, company, login_as
):
    insurer = company(plugins=["insurance", "sample"])
    login_as("manager", insurer)
    form = client.get("/channels/new").get_data(as_text=True)
    assert 'value="broker"' in form and "sample__licence" in form
    response = client.post(
        "/channels/new",
        data={
            "name": "平安经纪",
            "type": "broker",
            "status": "active",
            "sample__licence": "0201123456789012",
            "sample__licence_until": "2027-06-30",
        },
    )
    assert response.status_code == 302
    detail = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "0201123456789012" in detail and "2027-06-30" in detail
    assert "0201123456789012" in client.get("/channels/").get_data(as_text=True)
    login_as("manager", company())
    assert 'value="broker"' not in client.get("/channels/new").get_data(as_text=True)


# -- claims -----------------------------------------------------------------------------------


def test_add_and_remove_claims(app, db, client, login_as, network):
    n = network
    login_as("manager", n.company)
    client.post("/language/en")
    picker = client.get(f"/channels/{n.agent}?customer_q=丙").get_data(as_text=True)
    assert f'value="#{n.s1}"' in picker
    response = client.post(f"/channels/{n.agent}/claims", data={"customer": f"#{n.s1}"})
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "is now in channel conflict" in page
    response = client.post(
        f"/channels/{n.agent}/claims", data={"customer": "C-FREE", "note": "首先开发"}
    )
    assert response.status_code == 302
    for key, message in (
        ("C-NONE", "No customer"),
        (f"#{n.s1}", "already claims"),
        ("", "This field is required"),
        ("#99999999999", "No customer"),
    ):
        response = client.post(f"/channels/{n.agent}/claims", data={"customer": key})
        assert response.status_code == 422
        html = response.get_data(as_text=True)
        assert 'data-field="customer"' in html and message in html
    with company_scope(n.company.id):
        made = db.session.scalars(
            select(ChannelClaim).where(ChannelClaim.channel_id == n.agent).order_by(ChannelClaim.id)
        ).all()
        assert [(c.customer_id, c.note) for c in made] == [(n.s1, None), (n.free, "首先开发")]
        first = made[0].id
    assert client.post(f"/channels/{n.dist}/claims/{first}/delete").status_code == 404
    assert client.post(f"/channels/{n.agent}/claims/{first}/delete").status_code == 302
    with company_scope(n.company.id):
        assert channels.conflicts_for([n.s1]) == {}
        actions = db.session.execute(
            select(AuditLog.action).where(AuditLog.entity_type == "channel_claim")
        ).scalars()
        assert sorted(actions) == ["create", "create", "delete"]


def test_customers_of_another_company_cannot_be_claimed(
    app, db, client, company, login_as, network
):
    other = company()
    with company_scope(other.id):
        stranger = Customer(name="别家客户", code="C-OTHER")
        db.session.add(stranger)
        db.session.commit()
        stranger_id = stranger.id
    login_as("manager", network.company)
    for key in ("C-OTHER", f"#{stranger_id}", str(stranger_id)):
        response = client.post(f"/channels/{network.agent}/claims", data={"customer": key})
        assert response.status_code == 422


def test_detail_pages_its_customers(app, db, client, login_as, network):
    with company_scope(network.company.id):
        db.session.add_all(
            Customer(name=f"客户{i:02d}", channel_id=network.sub2) for i in range(25)
        )
        db.session.commit()
    login_as("viewer", network.company)
    html = client.get(f"/channels/{network.sub2}").get_data(as_text=True)
    first = html.split('class="list channel-customers"')[1]
    assert first.count("/customers/") - first.count("/customers/?") == 20
    found = re.search(r'class="button next" href="([^"]+)"', html)
    second = client.get(found.group(1)).get_data(as_text=True)
    rest = second.split('class="list channel-customers"')[1].split("</table>")[0]
    assert rest.count("/customers/") == 5 and "客户00" in rest
    assert client.get(f"/channels/{network.sub2}?after=abc").status_code == 400


# -- demo -------------------------------------------------------------------------------------


def test_demo_seed_builds_a_hierarchy_and_one_conflict(app, db, company):
    co = company()
    with company_scope(co.id):
        made = [
            Channel(name=name, type=kind)
            for name, kind in (("直销部", "direct"), ("代理", "agent"), ("经销商", "distributor"))
        ]
        db.session.add_all(made)
        db.session.flush()
        customers = [Customer(name=f"客户{i}", channel_id=made[i % 3].id) for i in range(30)]
        db.session.add_all(customers)
        db.session.flush()
        channels.seed_demo(made, customers, None)
        db.session.commit()
        subs = db.session.scalars(select(Channel).where(Channel.parent_id == made[2].id)).all()
        assert len(subs) == 2
        assert all(
            db.session.scalar(select(func.count()).where(Customer.channel_id == s.id)) for s in subs
        )
        all_ids = db.session.scalars(select(Customer.id)).all()
        assert len(channels.conflicts_for(all_ids)) == 1
