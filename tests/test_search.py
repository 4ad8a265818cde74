"""Customer search (core.search): what a user typing into the search box finds.

Three characters or more are looked up in the trigram index (FTS5 on SQLite, pg_trgm on
PostgreSQL) in names, phones, e-mails and codes; one or two characters in names only, through
their grams (first character, neighbouring pairs). Both databases must find the same
customers, stay inside the company, and follow every change to a customer at once.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import select

from core import search
from core.models import Customer
from core.tenancy import company_scope


def refresh(db) -> int:
    """What the ``customers.search_index`` job does."""
    with db.engine.begin() as conn:
        return search.refresh(conn)


@pytest.fixture
def found(client):
    def found(q: str) -> list[str]:
        answer = client.get(f"/api/v1/customers?q={quote(q)}&limit=100")
        assert answer.status_code == 200, answer.get_json()
        return sorted(r["name"] for r in answer.get_json()["data"])

    return found


@pytest.fixture
def acme(db, company, login_as):
    acme = company(name="康泰医药")
    login_as("manager", acme)
    with company_scope(acme.id):
        db.session.add_all(
            [
                Customer(name="北京协和医院", kind="consumer", code="H-0001"),
                Customer(name="上海瑞金医院", phone="021-6437 0045"),
                Customer(name="王小明", phone="13800138000", email="Wang.XM@example.cn"),
                Customer(name="欧阳修", phone="+86 139-1111-2222"),
                Customer(name="张伟", code="VIP-7"),
            ]
        )
        db.session.commit()
    refresh(db)  # the job has run: searches below go through the index
    return acme


def test_a_fragment_in_the_middle_of_a_name_is_found(acme, found):
    assert found("协和医") == ["北京协和医院"]
    assert found("医院") == ["上海瑞金医院", "北京协和医院"]
    assert found("协和") == ["北京协和医院"] and found("瑞金") == ["上海瑞金医院"]
    assert found("小明") == ["王小明"] and found("王小") == ["王小明"]
    assert found("欧阳修") == ["欧阳修"] and found("欧阳") == ["欧阳修"]


def test_one_character_is_a_surname_and_two_search_names_only(acme, found):
    assert found("张") == ["张伟"] and found("王") == ["王小明"]
    assert found("明") == []  # one character: the name's first
    assert found("VI") == [] and found("VIP") == ["张伟"]  # codes need three characters


def test_phones_match_on_their_digits_whatever_the_separators(acme, found):
    assert found("138-0013-8000") == ["王小明"]
    assert found("1391111") == ["欧阳修"]
    assert found("139 1111 2222") == ["欧阳修"]
    assert found("8000") == ["王小明"]  # the last digits, as a caller reads them out
    assert found("6437") == ["上海瑞金医院"]


def test_email_and_code_match_without_regard_to_case(acme, found):
    assert found("wang.xm@") == ["王小明"]
    assert found("WANG.XM") == ["王小明"]
    assert found("h-0001") == ["北京协和医院"]
    assert found("VIP") == ["张伟"]


def test_text_that_means_something_to_the_index_is_searched_as_typed(acme, db, found):
    with company_scope(acme.id):
        db.session.add(Customer(name='达"优"100%_药房 OR'))
        db.session.commit()
    for q in ['"协和', "协和*", "NEAR(医院)", "a OR b", "%%%", "___", "医院'", "-:^", "{x}"]:
        assert found(q) == [], q
    assert found('"优"') == ['达"优"100%_药房 OR']
    assert found("100%_") == ['达"优"100%_药房 OR']
    assert found("房 OR") == ['达"优"100%_药房 OR']


def test_a_renamed_customer_is_found_by_its_new_name_only(acme, db, found):
    with company_scope(acme.id):
        wang = db.session.scalar(select(Customer).where(Customer.name == "王小明"))
        wang.name = "王晓明"
        wang.phone = "13700137000"
        db.session.commit()
    assert found("王小明") == [] and found("王晓明") == ["王晓明"]
    assert found("13800138000") == [] and found("137-0013-7000") == ["王晓明"]


def test_a_deleted_customer_is_no_longer_found(acme, db, found):
    with company_scope(acme.id):
        db.session.delete(db.session.scalar(select(Customer).where(Customer.name == "欧阳修")))
        db.session.commit()
    assert found("欧阳修") == [] and found("1391111") == []


def test_another_companys_customers_are_never_found(acme, db, company, found):
    other = company(name="安居物业")
    with company_scope(other.id):
        db.session.add(Customer(name="北京协和医院", phone="13800138000"))
        db.session.commit()
    assert found("北京协和医院") == ["北京协和医院"]  # one: acme's
    assert found("13800138000") == ["王小明"]


def test_the_list_page_searches_the_same_way(acme, client):
    page = client.get("/customers/?q=" + quote("瑞金医"))
    assert page.status_code == 200
    assert "上海瑞金医院" in page.text and "北京协和医院" not in page.text


@pytest.mark.parametrize("indexed", [False, True], ids=["before indexing", "after indexing"])
def test_the_same_customers_are_found_before_and_after_the_index_catches_up(
    acme, db, found, indexed
):
    with company_scope(acme.id):
        wang = db.session.scalar(select(Customer).where(Customer.name == "王小明"))
        wang.name = "王晓明"
        db.session.delete(db.session.scalar(select(Customer).where(Customer.name == "张伟")))
        db.session.add(Customer(name="广州华山医院", phone="020-8888 1234"))
        db.session.commit()
    if indexed:
        refresh(db)
    assert found("华山") == ["广州华山医院"] and found("88881234") == ["广州华山医院"]
    assert found("王晓明") == ["王晓明"] and found("王小明") == [] and found("小明") == []
    assert found("张") == [] and found("VIP") == []
    assert found("医院") == ["上海瑞金医院", "北京协和医院", "广州华山医院"]


def test_the_search_index_job_indexes_what_changed_once(acme, db):
    refresh(db)
    assert refresh(db) == 0
    with company_scope(acme.id):
        db.session.add_all([Customer(name="甲医院"), Customer(name="乙医院")])
        db.session.commit()
    assert refresh(db) == (2 if db.engine.dialect.name == "sqlite" else 0)
    assert refresh(db) == 0


@pytest.mark.parametrize(
    "q",
    ["\x00", " ", "\x1e", "\x1f\x1e", "ab\x1f", "'", "\\", "%", "*", "^", "NEAR", "NOT", "(",
     "{", "a:b", "😀", "😀😀😀", "ｱｲｳ", "\u3000", "1", "12", "x" * 200, "x" * 201],
)  # fmt: skip
def test_odd_search_text_is_an_answer_or_a_clear_400(acme, client, q):
    for url in (f"/api/v1/customers?q={quote(q)}", f"/customers/?q={quote(q)}"):
        answer = client.get(url)
        assert answer.status_code in (200, 400), url
        if answer.status_code == 400:
            assert "q" in answer.get_data(as_text=True)
