"""No N+1 anywhere: every list page and every API list costs as many queries for a page of 5 rows
as for a page of 50.

The test builds the three demo companies (every built-in plugin's data), then walks every
``GET`` rule the app registers that takes no URL argument (so a page a plugin adds later is
covered without anyone listing it) and every list operation of the API's OpenAPI document, as
the admin of each demo company, once with ``LIST_PAGE_SIZE=5`` (``?limit=5`` for the API) and
once with 50, and compares the SQL statements each answer cost. A page whose two answers are
the same (fewer rows than five, or a page that is not a list) proves nothing and is counted as
such; the test requires that most list pages were really exercised.
"""

from __future__ import annotations

from core import demo
from core.models import Company
from core.testing import QueryCounter

#: Rules not to walk: they leave the session, stream whole files, or are not pages.
SKIP_PREFIXES = ("/logout", "/static", "/api/", "/healthz")
SMALL, LARGE = 5, 50


def _login(client, user, company_id: int) -> None:
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
        session["company_id"] = company_id


def _cost(engine, client, url: str) -> tuple[int, int, bytes]:
    client.get(url)  # warm: caches of the company, its plugins and the token stamp
    with QueryCounter(engine) as counter:
        answer = client.get(url)
    return answer.status_code, counter.count, answer.data


def test_no_list_page_or_api_list_grows_its_queries_with_its_page(app, db, make_app, make_user):
    demo.ensure(echo=lambda *_args: None)
    # Apps of their own: a request of the test's own app would share its app context (and
    # ``g``, where Flask-Login keeps the user) across requests.
    small_app, large_app = make_app(LIST_PAGE_SIZE=SMALL), make_app(LIST_PAGE_SIZE=LARGE)
    rules = sorted(
        {
            rule.rule
            for rule in app.url_map.iter_rules()
            if "GET" in (rule.methods or ())
            and not rule.arguments
            and not rule.rule.startswith(SKIP_PREFIXES)
        }
    )
    grew: list[str] = []
    exercised: set[str] = set()
    compared = 0
    companies = db.session.execute(db.select(Company.id, Company.code).order_by(Company.id)).all()
    assert len(companies) == 3
    for company_id, code in companies:
        admin = make_user("admin", db.session.get(Company, company_id))
        large, small = large_app.test_client(), small_app.test_client()
        _login(large, admin, company_id)
        _login(small, admin, company_id)
        # The document lists the operations of this company's plugins.
        answer = large.get("/api/v1/openapi.json")
        spec = answer.get_json()
        assert spec and "paths" in spec, (code, answer.status_code)
        api_lists = sorted(
            f"/api/v1{path}" if not path.startswith("/api/") else path
            for path, operations in spec["paths"].items()
            if "{" not in path and "get" in operations
        )
        # (what to report, the client and URL of the small page, of the large page)
        pairs = [(url, small, url, large, url) for url in rules] + [
            (path, large, f"{path}?limit={SMALL}", large, f"{path}?limit={LARGE}")
            for path in api_lists
        ]
        for name, small_client, small_url, large_client, large_url in pairs:
            status_small, count_small, body_small = _cost(db.engine, small_client, small_url)
            status_large, count_large, body_large = _cost(db.engine, large_client, large_url)
            if status_small != 200 or status_large != 200:
                continue
            compared += 1
            if body_small != body_large:
                exercised.add(name)
            if count_large > count_small:
                grew.append(f"{code} {name}: {count_small} → {count_large} queries")
    print(f"compared {compared} answers; {len(exercised)} lists differed between page sizes")
    assert not grew, "queries grow with the page size:\n" + "\n".join(grew)
    # The walk must really reach the lists (the demo has more than five rows of each).
    for must in ("/customers/", "/tickets/", "/channels/", "/api/v1/customers", "/api/v1/tickets"):
        assert must in exercised, f"{must} was not exercised with more than {SMALL} rows"
    assert len(exercised) >= 20, sorted(exercised)
