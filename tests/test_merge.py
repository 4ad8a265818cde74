"""Merging customers: every related row moves, nothing is lost, the audit log shows the merge.

This module is also a tiny plugin (``mergetest``): its tables refer to customers the way a
plugin's would, so the merge is shown to find them from the metadata alone.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import ForeignKey, String, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, mapped_column

from core import fields, merge
from core.extend import Manifest, TenantMixin, db
from core.models import (
    AuditLog,
    Channel,
    ChannelClaim,
    Comment,
    Contact,
    Customer,
    CustomerTag,
    Interaction,
    ServiceTicket,
    Tag,
    WorkflowHistory,
)
from core.plugins import current
from core.tenancy import company_scope, unscoped

manifest = Manifest(name="mergetest", label="Merge test", label_zh="合并测试", version="1.0")


class MergetestVisit(TenantMixin, db.Model):
    """A plugin record that belongs to a customer."""

    __tablename__ = "mergetest_visit"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    note: Mapped[str] = mapped_column(String(100))


class MergetestCard(TenantMixin, db.Model):
    """A plugin record unique per customer and programme (a loyalty card)."""

    __tablename__ = "mergetest_card"
    __table_args__ = (UniqueConstraint("customer_id", "programme"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="SET NULL"))
    programme: Mapped[str] = mapped_column(String(40))


pytestmark = pytest.mark.guanxi_plugins("tests.sample_plugin", __name__)

MODELS = {
    "contact": Contact,
    "interaction": Interaction,
    "service_ticket": ServiceTicket,
    "customer_tag": CustomerTag,
    "channel_claim": ChannelClaim,
    "mergetest_visit": MergetestVisit,
    "mergetest_card": MergetestCard,
}


def customer_rows(db, ids):
    """Every row referring to one of ``ids``: {table: sorted row ids} (comments by subject)."""
    out = {
        name: sorted(db.session.scalars(select(model.id).where(model.customer_id.in_(ids))))
        for name, model in MODELS.items()
    }
    out["comment"] = sorted(
        db.session.scalars(
            select(Comment.id).where(
                Comment.subject_type == "customer", Comment.subject_id.in_(ids)
            )
        )
    )
    out["workflow_history"] = sorted(
        db.session.scalars(
            select(WorkflowHistory.id).where(
                WorkflowHistory.subject_type == "customer", WorkflowHistory.subject_id.in_(ids)
            )
        )
    )
    return out


def ext_values(ids):
    declared = current().registry.fields_for("customer", ["sample"])
    return fields.load(declared, ids)


def build(db, company_row):
    """Two records of one customer, each with related rows, plus a bystander."""
    with company_scope(company_row.id):
        survivor = Customer(
            name="康泰医药有限公司",
            phone="13800138000",
            revenue=Decimal("150000"),
            notes="老客户",
        )
        merged = Customer(
            name="康泰 医药",
            phone="+86 138-0013-8000",
            email="info@kangtai.cn",
            region="上海",
            status="existing",
            revenue=Decimal("100000"),
            notes="微信留资",
        )
        bystander = Customer(name="路人甲")
        db.session.add_all([survivor, merged, bystander])
        db.session.flush()
        s, m, b = survivor.id, merged.id, bystander.id
        vip, key, other = Tag(name="VIP"), Tag(name="重点"), Tag(name="其他")
        east, south = Channel(name="华东代理"), Channel(name="华南经销")
        db.session.add_all([vip, key, other, east, south])
        db.session.flush()
        ticket = ServiceTicket(customer_id=m, subject="报修")
        db.session.add_all(
            [
                Contact(customer_id=s, name="张经理"),
                Contact(customer_id=m, name="李采购"),
                Contact(customer_id=m, name="王主任"),
                Interaction(customer_id=s, kind="call"),
                Interaction(customer_id=m, kind="visit"),
                Interaction(customer_id=m, kind="wechat"),
                Interaction(customer_id=m, kind="call"),
                ServiceTicket(customer_id=s, subject="咨询"),
                ticket,
                ServiceTicket(customer_id=m, subject="投诉"),
                CustomerTag(customer_id=s, tag_id=vip.id),
                CustomerTag(customer_id=m, tag_id=vip.id),  # the survivor has it already
                CustomerTag(customer_id=m, tag_id=key.id),
                CustomerTag(customer_id=b, tag_id=vip.id),
                ChannelClaim(customer_id=s, channel_id=east.id),
                ChannelClaim(customer_id=m, channel_id=east.id, note="重复报备"),
                ChannelClaim(customer_id=m, channel_id=south.id),
                Comment(subject_type="customer", subject_id=s, body="first"),
                Comment(subject_type="customer", subject_id=m, body="@张经理 同一家"),
                Comment(subject_type="customer", subject_id=m, body="second"),
                Comment(subject_type="customer", subject_id=b, body="bystander"),
                WorkflowHistory(
                    workflow="w",
                    subject_type="customer",
                    subject_id=m,
                    transition="t",
                    from_state="a",
                    to_state="b",
                ),
                MergetestVisit(customer_id=m, note="拜访1"),
                MergetestVisit(customer_id=m, note="拜访2"),
                MergetestVisit(customer_id=b, note="bystander"),
                MergetestCard(customer_id=s, programme="gold"),
                MergetestCard(customer_id=m, programme="gold"),
                MergetestCard(customer_id=m, programme="silver"),
            ]
        )
        db.session.flush()
        # a comment on the ticket is about the ticket, not the customer: its subject stays
        db.session.add(Comment(subject_type="service_ticket", subject_id=m, body="ticket note"))
        declared = current().registry.fields_for("customer", ["sample"])
        fields.save(declared, s, {"sample__grade": "a"})
        fields.save(declared, m, {"sample__grade": "b", "sample__hospital_beds": 300})
        db.session.commit()
        return s, m, b


def test_every_related_row_moves_and_the_audit_log_shows_the_merge(app, db, company, make_user):
    acme = company(plugins=["sample"])
    admin = make_user("admin", acme)
    s, m, b = build(db, acme)
    with company_scope(acme.id):
        before = customer_rows(db, [s, m])
        bystander_before = customer_rows(db, [b])
        ticket_comment = db.session.scalar(
            select(Comment.id).where(Comment.subject_type == "service_ticket")
        )
        survivor, merged = db.session.get(Customer, s), db.session.get(Customer, m)
        result = merge.merge_customers(survivor, merged, admin)
        db.session.commit()

        after = customer_rows(db, [s])
        dropped = {"customer_tag": 1, "channel_claim": 1, "mergetest_card": 1}
        for table, ids in before.items():
            # every row still exists and now belongs to the survivor, except the duplicates
            assert set(after[table]) <= set(ids), table
            assert len(after[table]) == len(ids) - dropped.get(table, 0), table
        assert customer_rows(db, [m]) == {table: [] for table in before}
        assert customer_rows(db, [b]) == bystander_before
        assert db.session.get(Customer, m) is None
        assert (
            db.session.scalar(select(Comment.subject_id).where(Comment.id == ticket_comment)) == m
        )

        survivor = db.session.get(Customer, s)
        assert survivor.email == "info@kangtai.cn" and survivor.region == "上海"
        assert survivor.name == "康泰医药有限公司" and survivor.phone == "13800138000"
        assert survivor.revenue == Decimal("250000") and survivor.status == "existing"
        assert survivor.notes == "老客户\n\n微信留资"
        assert survivor.value_tier == "B"  # reclassified after the merge
        assert ext_values([s])[s] == {"sample__grade": "a", "sample__hospital_beds": 300}
        assert ext_values([m])[m] == {"sample__grade": None, "sample__hospital_beds": None}

        log = db.session.scalars(select(AuditLog).where(AuditLog.action == "merge")).one()
        assert (log.entity_type, log.entity_id, log.user_id) == ("customer", s, admin.id)
        assert log.id == result.audit_id
        assert log.data["merged_id"] == m
        assert log.data["merged"]["name"] == "康泰 医药"
        assert log.data["merged"]["email"] == "info@kangtai.cn"
        assert log.data["extension"]["sample_customer_ext"]["hospital_beds"] == 300
        assert log.data["moved"] == {
            "contact.customer_id": 2,
            "interaction.customer_id": 3,
            "service_ticket.customer_id": 2,
            "customer_tag.customer_id": 1,
            "channel_claim.customer_id": 1,
            "comment.subject_id": 2,
            "workflow_history.subject_id": 1,
            "mergetest_visit.customer_id": 2,
            "mergetest_card.customer_id": 1,
            "sample_customer_ext.id": 1,
        }
        kept = log.data["dropped_duplicates"]
        assert [r["note"] for r in kept["channel_claim.customer_id"]] == ["重复报备"]
        assert [r["programme"] for r in kept["mergetest_card.customer_id"]] == ["gold"]
        assert len(kept["customer_tag.customer_id"]) == 1
        assert set(log.data["filled"]) >= {"email", "region", "revenue", "status", "notes"}


def test_a_merged_record_without_side_row_and_a_survivor_without_one(app, db, company, make_user):
    acme = company(plugins=["sample"])
    manager = make_user("manager", acme)
    with company_scope(acme.id):
        a, b = Customer(name="甲"), Customer(name="乙")
        db.session.add_all([a, b])
        db.session.flush()
        declared = current().registry.fields_for("customer", ["sample"])
        fields.save(declared, b.id, {"sample__hospital_beds": 12})
        db.session.commit()
        merge.merge_customers(a, b, manager)
        db.session.commit()
        assert ext_values([a.id])[a.id]["sample__hospital_beds"] == 12


def test_notifications_about_the_merged_customer_lead_to_the_survivor(app, db, company, make_user):
    from core.models import Notification

    acme = company()
    manager = make_user("manager", acme)
    with company_scope(acme.id):
        a, b = Customer(name="甲"), Customer(name="乙")
        db.session.add_all([a, b])
        db.session.flush()
        links = [f"/customers/{b.id}", f"/customers/{b.id}/contacts/new", f"/customers/{b.id}9"]
        db.session.add_all(
            Notification(user_id=manager.id, kind="x", message="m", link=link) for link in links
        )
        db.session.commit()
        merge.merge_customers(a, b, manager)
        db.session.commit()
        found = db.session.scalars(select(Notification.link).order_by(Notification.id)).all()
    assert found == [f"/customers/{a.id}", f"/customers/{a.id}/contacts/new", links[2]]


def test_merge_is_refused_across_companies(app, db, company, make_user):
    acme, other = company(), company()
    admin = make_user("admin", acme)
    with company_scope(acme.id):
        ours = Customer(name="我们的")
        db.session.add(ours)
        db.session.commit()
    with company_scope(other.id):
        theirs = Customer(name="别人的")
        db.session.add(theirs)
        db.session.add(Contact(customer=theirs, name="联系人"))
        db.session.commit()
        theirs_id = theirs.id
    with company_scope(acme.id):
        with unscoped():
            foreign = db.session.get(Customer, theirs_id)
        with pytest.raises(merge.MergeRefused) as refused:
            merge.merge_customers(db.session.get(Customer, ours.id), foreign, admin)
        assert refused.value.status == 404
        db.session.rollback()
    with company_scope(other.id):
        assert db.session.get(Customer, theirs_id) is not None
        assert db.session.scalar(select(func.count(Contact.id))) == 1


@pytest.mark.parametrize("role", ["sales_rep", "service_agent", "viewer"])
def test_merge_is_refused_below_manager(app, db, company, make_user, role):
    acme = company()
    user = make_user(role, acme)
    with company_scope(acme.id):
        a, b = Customer(name="甲"), Customer(name="甲")
        db.session.add_all([a, b])
        db.session.commit()
        with pytest.raises(merge.MergeRefused) as refused:
            merge.merge_customers(a, b, user)
        assert refused.value.status == 403
        assert db.session.scalar(select(func.count(Customer.id))) == 2


def test_merge_into_itself_is_refused(app, db, company, make_user):
    acme = company()
    admin = make_user("admin", acme)
    with company_scope(acme.id):
        a = Customer(name="甲")
        db.session.add(a)
        db.session.commit()
        with pytest.raises(merge.MergeRefused):
            merge.merge_customers(a, a, admin)


def test_references_are_found_from_the_metadata(app):
    found = {ref.name: ref.kind for ref in merge.references()}
    assert found["contact.customer_id"] == "fk"
    assert found["mergetest_visit.customer_id"] == "fk"
    assert found["sample_customer_ext.id"] == "one_to_one"
    assert found["comment.subject_id"] == "subject"
    assert "audit_log.entity_id" not in found


# -- the merge screen --------------------------------------------------------------------------


def test_merge_screen_compares_and_merges(app, db, client, company, login_as):
    acme = company(plugins=["sample"])
    login_as("manager", acme)
    s, m, _b = build(db, acme)
    page = client.get(f"/customers/merge?a={s}&b={m}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "康泰医药有限公司" in html and "康泰 医药" in html and "info@kangtai.cn" in html
    with company_scope(acme.id):
        versions = (db.session.get(Customer, s).version, db.session.get(Customer, m).version)
    form = {"survivor": str(s), "version_a": versions[0], "version_b": versions[1]}
    refused = client.post(f"/customers/merge?a={s}&b={m}", data=form)
    assert refused.status_code == 422
    assert 'data-field="confirm"' in refused.get_data(as_text=True)
    with company_scope(acme.id):
        assert db.session.get(Customer, m) is not None
    done = client.post(f"/customers/merge?a={s}&b={m}", data={**form, "confirm": "y"})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/customers/{s}")
    with company_scope(acme.id):
        db.session.expire_all()
        assert db.session.get(Customer, m) is None
        assert (
            db.session.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == "merge"))
            == 1
        )


def test_merge_screen_refuses_a_stale_page(app, db, client, company, login_as):
    acme = company()
    login_as("admin", acme)
    with company_scope(acme.id):
        a, b = Customer(name="甲"), Customer(name="甲")
        db.session.add_all([a, b])
        db.session.commit()
        ids = a.id, b.id
    form = {"survivor": str(ids[1]), "version_a": 1, "version_b": 0, "confirm": "y"}
    response = client.post(f"/customers/merge?a={ids[0]}&b={ids[1]}", data=form)
    assert response.status_code == 409
    with company_scope(acme.id):
        assert db.session.scalar(select(func.count(Customer.id))) == 2


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("a=1", 400),
        ("a=x&b=2", 400),
        ("a=5&b=5", 400),
        ("a=999998&b=999999", 404),
        ("a=1&b=" + "9" * 30, 404),
        (f"a=1&b={2**40}", 404),
        ("a=1&b=%C2%B2", 400),
    ],
)
def test_merge_screen_bad_arguments(app, client, company, login_as, query, status):
    login_as("admin", company())
    assert client.get(f"/customers/merge?{query}").status_code == status


def test_merge_screen_is_for_admins_and_managers(app, db, client, company, login_as):
    acme = company()
    login_as("sales_rep", acme)
    with company_scope(acme.id):
        a, b = Customer(name="甲"), Customer(name="甲")
        db.session.add_all([a, b])
        db.session.commit()
        ids = a.id, b.id
    url = f"/customers/merge?a={ids[0]}&b={ids[1]}"
    assert client.get(url).status_code == 403
    posted = client.post(url, data={"survivor": str(ids[0]), "confirm": "y"})
    assert posted.status_code == 403
    with company_scope(acme.id):
        assert db.session.scalar(select(func.count(Customer.id))) == 2


def test_merge_screen_does_not_reach_another_company(app, db, client, company, login_as):
    acme, other = company(), company()
    login_as("admin", acme)
    with company_scope(acme.id):
        ours = Customer(name="甲")
        db.session.add(ours)
        db.session.commit()
    with company_scope(other.id):
        theirs = Customer(name="甲")
        db.session.add(theirs)
        db.session.commit()
    url = f"/customers/merge?a={ours.id}&b={theirs.id}"
    assert client.get(url).status_code == 404
    assert client.post(url, data={"survivor": str(ours.id), "confirm": "y"}).status_code == 404


def test_rows_in_tables_the_metadata_does_not_know_move_too(app, db, company, make_user):
    """A plugin installed once and removed since left a table behind: its rows move as well,
    instead of vanishing with the merged customer (ON DELETE CASCADE)."""
    from sqlalchemy import text

    acme = company()
    admin = make_user("admin", acme)
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE oldplugin_note (id INTEGER PRIMARY KEY, "
                "customer_id INTEGER REFERENCES customer(id) ON DELETE CASCADE, body TEXT)"
            )
        )
    try:
        with company_scope(acme.id):
            a, b = Customer(name="甲"), Customer(name="甲")
            db.session.add_all([a, b])
            db.session.commit()
            db.session.execute(
                text("INSERT INTO oldplugin_note (id, customer_id, body) VALUES (1, :b, 'x')"),
                {"b": b.id},
            )
            db.session.commit()
            result = merge.merge_customers(a, b, admin)
            db.session.commit()
            assert result.moved["oldplugin_note.customer_id"] == 1
            owner = db.session.scalar(text("SELECT customer_id FROM oldplugin_note"))
            assert owner == a.id
    finally:
        db.session.rollback()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE oldplugin_note"))
