"""Identify: normalised phone, e-mail and name keys; duplicate groups found in SQL; the page."""

from __future__ import annotations

import pytest

from core import dedupe
from core.models import Customer
from core.tenancy import company_scope


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("+86 138-0013-8000", "13800138000"),
        ("13800138000", "13800138000"),
        ("0086 138 0013 8000", "13800138000"),
        ("86 13800138000", "13800138000"),
        ("（138）0013－8000", "13800138000"),
        ("１３８００１３８０００", "13800138000"),
        ("+86 10 6552 9988", "1065529988"),
        ("010-65529988", "1065529988"),
        ("(010) 6552.9988", "1065529988"),
        ("+852 2345 6789", "85223456789"),
        ("00852 2345 6789", "85223456789"),
        ("110", None),
        ("", None),
        (None, None),
        ("138 0013 8000 转 12", None),
    ],
)
def test_phone_keys(raw, key):
    assert dedupe.phone_key(raw) == key


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("康泰医药有限公司", "康泰医药"),
        ("康泰 医药", "康泰医药"),
        ("康泰医药股份有限公司", "康泰医药"),
        ("ＡＢＣ Trading Co.,Ltd.", "abctrading"),
        ("abc trading", "abctrading"),
        ("张　伟", "张伟"),
        ("公司", "公司"),
        ("A", None),
    ],
)
def test_name_keys(raw, key):
    assert dedupe.name_key(raw) == key


def test_email_keys():
    assert dedupe.email_key("  Li.Na@Example.COM ") == "li.na@example.com"
    assert dedupe.email_key(None) is None


SAMPLES = [
    # (name, phone, email)
    ("康泰医药有限公司", "+86 138-0013-8000", "info@kangtai.cn"),
    ("康泰 医药", "13800138000", None),
    ("鸿信商贸", "0086 139 0000 1111", " SALES@HONGXIN.CN "),
    ("Hongxin Trading", "139-0000-1111", "sales@hongxin.cn"),
    ("王芳", "010-65529988", None),
    ("王 芳", "+86 10 6552 9988", "wf@example.com"),
    ("李雷", "13512345678", "lilei@example.com"),
    ("韩梅梅", "weird 转 12", "hmm@example.com"),
]


def add_samples(db, company_row):
    with company_scope(company_row.id):
        rows = [Customer(name=n, phone=p, email=e) for n, p, e in SAMPLES]
        db.session.add_all(rows)
        db.session.commit()
        return [r.id for r in rows]


def test_sql_keys_equal_python_keys(app, db, company):
    acme = company()
    ids = add_samples(db, acme)
    with company_scope(acme.id):
        for kind in dedupe.KINDS:
            k = dedupe.keyed(kind)
            from_sql = dict(db.session.execute(db.select(k.c.id, k.c.key)).all())
            expected = {}
            for cid, (name, phone, email) in zip(ids, SAMPLES, strict=True):
                key = dedupe.KEY_FUNCTIONS[kind](
                    {"name": name, "phone": phone, "email": email}[kind]
                )
                if key is not None:
                    expected[cid] = key
            assert from_sql == expected, kind


def test_duplicate_groups_by_phone_email_and_name(app, db, company):
    acme, other = company(), company()
    ids = add_samples(db, acme)
    add_samples(db, other)  # the same people in another company never show up
    with company_scope(acme.id):
        phone = dedupe.groups("phone")
        assert phone.count == 3
        assert {g.key: [c.id for c in g.customers] for g in phone.groups} == {
            "13800138000": [ids[0], ids[1]],
            "13900001111": [ids[2], ids[3]],
            "1065529988": [ids[4], ids[5]],
        }
        email = dedupe.groups("email")
        assert [(g.key, g.size) for g in email.groups] == [("sales@hongxin.cn", 2)]
        name = dedupe.groups("name")
        assert sorted(g.key for g in name.groups) == ["康泰医药", "王芳"]


def test_duplicate_groups_page_by_key(app, db, company):
    acme = company()
    add_samples(db, acme)
    with company_scope(acme.id):
        first = dedupe.groups("phone", size=2)
        assert len(first.groups) == 2 and first.next_after == first.groups[-1].key
        rest = dedupe.groups("phone", size=2, after=first.next_after)
        assert len(rest.groups) == 1 and rest.next_after is None
        seen = [g.key for g in first.groups + rest.groups]
        assert seen == sorted(seen) and len(set(seen)) == 3


def test_possible_duplicates_for_the_customer_form(app, db, company):
    acme = company()
    ids = add_samples(db, acme)
    with company_scope(acme.id):
        found = dedupe.possible_duplicates("新客户", "+86 (138) 0013 8000", None)
        assert [c.id for c in found] == [ids[0], ids[1]]
        found = dedupe.possible_duplicates("李雷", None, None, exclude_id=ids[6])
        assert found == []
        found = dedupe.possible_duplicates(None, None, "LiLei@Example.com")
        assert [c.id for c in found] == [ids[6]]
        assert dedupe.possible_duplicates(None, "12", "") == []
        assert dedupe.possible_duplicates("李\x00雷", None, "a\x00@b.c") == []


def test_duplicates_page_lists_groups_with_their_key(app, db, client, company, login_as):
    acme = company()
    login_as("manager", acme)
    add_samples(db, acme)
    page = client.get("/customers/duplicates?by=phone")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "13800138000" in html and "康泰 医药" in html and "/customers/merge?" in html
    assert "sales@hongxin.cn" in client.get("/customers/duplicates?by=email").get_data(as_text=True)
    assert client.get("/customers/duplicates?by=shoe").status_code == 400
    assert client.get("/customers/duplicates?after=%00").status_code == 400
    assert client.get("/customers/duplicates?by=name&after=" + "x" * 400).status_code == 400
    assert client.get("/customers/duplicates?by=name&after=zzz").status_code == 200


def test_duplicates_page_queries_do_not_grow_with_groups(app, db, client, company, login_as):
    from tests.test_customer_list import QueryCounter

    acme = company()
    login_as("manager", acme)
    add_samples(db, acme)
    client.get("/customers/duplicates")
    db.session.expire_all()
    with QueryCounter(db.engine) as small:
        assert client.get("/customers/duplicates").status_code == 200
    with company_scope(acme.id):
        db.session.add_all(Customer(name=f"客户{i}", phone=f"+86 137{i:08d}") for i in range(20))
        db.session.add_all(Customer(name=f"客户{i}b", phone=f"137{i:08d}") for i in range(20))
        db.session.commit()
    db.session.expire_all()
    with QueryCounter(db.engine) as full:
        assert client.get("/customers/duplicates").status_code == 200
    assert full.count == small.count


def test_sales_reps_cannot_open_the_duplicates_page(app, client, company, login_as):
    login_as("sales_rep", company())
    assert client.get("/customers/duplicates").status_code == 403
