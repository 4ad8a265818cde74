"""Reports (issue 5): every core report on a small company, parameters, permissions, plugin
reports, downloads, query counts, the dashboard's report widgets and drill-down in a browser."""

from __future__ import annotations

import io
import re
import types
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from core import classify, workflow
from core.builtin_reports import REPORTS
from core.db import utcnow
from core.models import AuditLog, Channel, ChannelClaim, Customer, Interaction
from core.plugins import PluginError, PluginManager, hookimpl
from core.plugins.manifest import Manifest
from core.reports import Column, Report
from core.tenancy import company_scope
from core.testing import QueryCounter
from core.tickets import open_ticket


def seed(db, company, rep, manager, agent) -> dict[str, int]:
    """Three customers over two channels (one in conflict), a tier move, a lost customer, two
    tickets (one answered and resolved, with a follow-up scored 5) and a call."""
    with company_scope(company.id):
        direct = Channel(name="直销部", type="direct")
        agency = Channel(name="华东代理", type="agent")
        db.session.add_all([direct, agency])
        db.session.flush()
        wang = Customer(
            name="王美丽", kind="consumer", revenue=Decimal("1500000"), region="上海市",
            status="existing", owner_id=rep.id, channel_id=direct.id,
        )  # fmt: skip
        li = Customer(
            name="李强", kind="consumer", revenue=Decimal("50000"), region="北京市",
            status="existing", owner_id=manager.id, channel_id=agency.id,
        )  # fmt: skip
        acme = Customer(
            name="华夏商贸有限公司", kind="business", revenue=Decimal("300000"), region="北京市",
            status="existing", owner_id=manager.id, channel_id=direct.id,
        )  # fmt: skip
        db.session.add_all([wang, li, acme])
        db.session.flush()
        db.session.add(ChannelClaim(channel_id=agency.id, customer_id=wang.id))
        classify.classify_customers()  # first ratings: A, C, B (not moves)
        li.revenue = Decimal("250000")
        acme.status = "lost"
        db.session.flush()
        classify.classify_customers()  # 李强 moves C → B
        urgent = open_ticket(
            customer_id=wang.id, type="complaint", priority="urgent", intake_channel="phone",
            subject="服务态度投诉", assignee_id=agent.id,
        )  # fmt: skip
        open_ticket(
            customer_id=li.id, type="inquiry", priority="normal", intake_channel="wechat",
            subject="咨询优惠政策",
        )  # fmt: skip
        for step in ("assign", "start", "resolve"):
            workflow.transition(urgent, step, user=agent, inputs={"comment": "已处理"})
        db.session.add_all(
            [
                Interaction(
                    customer_id=wang.id,
                    ticket_id=urgent.id,
                    user_id=manager.id,
                    kind="follow_up",
                    customer_score=5,
                    quality_score=90,
                ),  # fmt: skip
                Interaction(customer_id=li.id, user_id=rep.id, kind="call"),
            ]
        )
        db.session.commit()
        return {"direct": direct.id, "agency": agency.id, "wang": wang.id, "li": li.id}


@pytest.fixture
def acme(db, company, make_user):
    firm = company(name="锦苑物业")
    users = {role: make_user(role, firm) for role in ("sales_rep", "manager", "service_agent")}
    ids = seed(db, firm, users["sales_rep"], users["manager"], users["service_agent"])
    return types.SimpleNamespace(company=firm, ids=ids, **users)


def log_in(client, user, company, lang="en"):
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
        session["company_id"] = company.id
    client.post(f"/language/{lang}")


def table_rows(html: str) -> list[list[str]]:
    body = html[html.index('class="list report-table"') :]
    body = body[body.index("<tbody>") : body.index("</tbody>")]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td.*?</td>", row, re.S)]
        for row in rows
    ]


def test_every_core_report_shows_data_for_an_admin(app, client, acme, login_as):
    login_as("admin", acme.company)
    client.post("/language/en")
    index = client.get("/reports/").get_data(as_text=True)
    for report in REPORTS:
        assert f'href="/reports/{report.name}"' in index
        response = client.get(f"/reports/{report.name}")
        html = response.get_data(as_text=True)
        assert response.status_code == 200, report.name
        assert '<svg xmlns="http://www.w3.org/2000/svg" class="chart' in html, report.name
        assert "chart-empty" not in html, report.name
        rows = table_rows(html)
        assert rows and "No data" not in rows[0][0], report.name


def test_the_reports_menu_entry(app, client, acme, login_as):
    login_as("viewer", acme.company)
    html = client.get("/dashboard/").get_data(as_text=True)
    assert 'href="/reports/"' in html


def test_reports_count_what_they_should(app, db, client, acme, company, make_user, login_as):
    other = company()  # the same data in another company must not count here
    seed(db, other, *(make_user(r, other) for r in ("sales_rep", "manager", "service_agent")))
    login_as("admin", acme.company)
    client.post("/language/en")

    def rows(path: str) -> dict[str, list[str]]:
        return {r[0]: r[1:] for r in table_rows(client.get(path).get_data(as_text=True))}

    kinds = rows("/reports/customers")
    assert kinds["Consumer"][0] == "2" and kinds["Business buyer"][0] == "1"
    assert kinds["Consumer"][1] == "66.7%"
    assert rows("/reports/customers?dimension=value_tier")["B · Major"][0] == "2"
    assert rows("/reports/tier_movement?view=path")["C · Ordinary → B · Major"] == ["Up", "1"]
    month = utcnow().strftime("%Y-%m")
    movement = rows("/reports/tier_movement")
    assert movement[month] == ["1", "0", "1"]
    assert rows("/reports/new_lost")[month] == ["3", "1", "2"]
    tickets = rows("/reports/tickets?dimension=priority")
    assert tickets["Urgent"] == ["0", "1", "0", "1"] and tickets["Normal"] == ["1", "0", "0", "1"]
    sla = rows("/reports/sla")
    assert sla["First response"][:3] == ["1", "0", "0"] and sla["First response"][4] == "100.0%"
    assert rows("/reports/satisfaction")["5 ★"][0] == "1"
    funnel = rows("/reports/service_funnel")
    assert funnel["Opened"][0] == "2" and funnel["Resolved or closed"] == ["1", "50.0%"]
    assert rows("/reports/channels")["华东代理"] == ["1", "250,000.00", "250,000.00", "1", "1"]
    times = rows("/reports/service_times")
    assert times["≤ 30 min"][0] == "1" and times["≤ 30 min"][2] == "1"


def test_drill_down_links_lead_to_the_filtered_lists(app, client, acme, login_as):
    login_as("admin", acme.company)
    html = client.get(f"/reports/customers?channel={acme.ids['direct']}").get_data(as_text=True)
    assert f'href="/customers/?channel_id={acme.ids["direct"]}&amp;kind=consumer"' in html
    html = client.get("/reports/tickets?dimension=priority").get_data(as_text=True)
    assert 'href="/tickets/?priority=urgent&amp;state=resolved&amp;state=closed"' in html
    assert 'href="/tickets/?priority=normal&amp;state=new' in html
    html = client.get("/reports/sla?dimension=priority").get_data(as_text=True)
    end = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    start = end - timedelta(days=89)  # the report's default: the last 90 days
    assert (
        f'href="/tickets/?created_from={start}&amp;created_to={end}&amp;priority=urgent'
        '&amp;sla=breached"'
    ) in html
    html = client.get("/reports/tickets?dimension=type&start=2026-01-01&end=2026-03-31")
    assert "created_from=2026-01-01&amp;created_to=2026-03-31&amp;type=" in html.get_data(
        as_text=True
    )
    html = client.get("/reports/channels").get_data(as_text=True)
    assert f'href="/channels/conflicts?channel={acme.ids["agency"]}"' in html


def test_record_rules_narrow_what_a_sales_rep_counts(app, client, acme):
    log_in(client, acme.sales_rep, acme.company)
    rows = table_rows(client.get("/reports/customers").get_data(as_text=True))
    assert rows == [["Consumer", "1", "100.0%", "1,500,000.00"]]
    funnel = table_rows(client.get("/reports/service_funnel").get_data(as_text=True))
    assert funnel[0][:2] == ["Opened", "1"]  # 王美丽's ticket only
    month = utcnow().strftime("%Y-%m")
    new_lost = table_rows(client.get("/reports/new_lost").get_data(as_text=True))
    assert [month, "1", "0", "1"] in new_lost  # 华夏商贸 (lost) is the manager's
    movement = table_rows(client.get("/reports/tier_movement").get_data(as_text=True))
    assert [month, "0", "0", "0"] in movement  # 李强's move is the manager's customer's
    times = table_rows(client.get("/reports/service_times").get_data(as_text=True))
    assert times[0][:4] == ["≤ 30 min", "1", "100.0%", "1"]
    sla = table_rows(client.get("/reports/sla").get_data(as_text=True))
    assert sla[0][:5] == ["First response", "1", "0", "0", "0"]  # not the manager's open one
    people = table_rows(client.get("/reports/interactions").get_data(as_text=True))
    # the rep's own call was on the manager's customer, which the rep does not see
    assert [r[0] for r in people] == [acme.manager.name]
    log_in(client, acme.manager, acme.company)
    sla = table_rows(client.get("/reports/sla").get_data(as_text=True))
    assert sla[0][:5] == ["First response", "1", "0", "0", "1"]
    people = table_rows(client.get("/reports/interactions").get_data(as_text=True))
    assert sorted(r[0] for r in people) == sorted([acme.manager.name, acme.sales_rep.name])


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("sla?start=2026-13-01", "start", "Enter a date as YYYY-MM-DD."),
        ("sla?start=2026-02-30", "start", "Enter a date as YYYY-MM-DD."),
        ("sla?start=0001-01-01", "start", "Enter a date between 1970 and 2999."),
        ("sla?start=2026-05-01&end=2026-04-01", "end", "must not be before the start"),
        ("sla?dimension=<script>", "dimension", "Choose one of the listed values."),
        ("customers?owner=abc", "owner", "Choose one of the listed values."),
        ("customers?channel=99999999999", "channel", "Choose one of the listed values."),
        ("tickets?assignee=" + "9" * 500, "assignee", "This value is too long."),
        ("new_lost?start=%00", "start", "This value is too long."),
    ],
)
def test_bad_parameters_are_form_messages(app, client, acme, login_as, query, field, message):
    login_as("manager", acme.company)
    client.post("/language/en")
    response = client.get(f"/reports/{query}")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert f'data-field="{field}"' in html and message in html
    assert "<script>" not in html
    assert "Correct the choices above" in html
    export = client.get(f"/reports/{query.replace('?', '/export.csv?')}")
    assert export.status_code == 400 and field in export.get_data(as_text=True)


def test_a_channel_of_another_company_is_not_a_choice(app, client, acme, company, login_as):
    other = company()
    with company_scope(other.id):
        foreign = Channel(name="别家渠道")
        app.extensions["sqlalchemy"].session.add(foreign)
        app.extensions["sqlalchemy"].session.commit()
        foreign_id = foreign.id
    login_as("manager", acme.company)
    response = client.get(f"/reports/customers?channel={foreign_id}")
    assert response.status_code == 400 and "别家渠道" not in response.get_data(as_text=True)


def test_a_report_for_some_roles_is_refused_to_the_others(app, client, acme):
    log_in(client, acme.sales_rep, acme.company)
    assert 'href="/reports/channels"' not in client.get("/reports/").get_data(as_text=True)
    response = client.get("/reports/channels")
    assert response.status_code == 403
    assert "admin, manager" in response.get_data(as_text=True)
    assert client.get("/reports/channels/export.csv").status_code == 403
    log_in(client, acme.manager, acme.company)
    assert client.get("/reports/channels").status_code == 200
    assert client.get("/reports/no_such_report").status_code == 404


def test_export_csv_and_xlsx_for_a_manager_audited(app, db, client, acme):
    from openpyxl import load_workbook

    log_in(client, acme.manager, acme.company, lang="zh_CN")
    csv = client.get("/reports/tickets/export.csv?dimension=priority")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert "report-tickets.csv" in csv.headers["Content-Disposition"]
    lines = csv.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0] == "优先级,处理中,已解决/关闭,已取消,合计"
    assert "紧急,0,1,0,1" in lines
    xlsx = client.get("/reports/sla/export.xlsx?dimension=kind")
    assert xlsx.status_code == 200
    sheet = load_workbook(io.BytesIO(xlsx.get_data())).active
    values = list(sheet.values)
    assert values[0][-1] == "达标率 (%)"
    assert values[1][0] == "首次响应" and values[1][1] == 1 and values[1][-1] == 100.0
    with company_scope(acme.company.id):
        audits = db.session.scalars(
            select(AuditLog).where(AuditLog.action == "export", AuditLog.entity_type == "report")
        ).all()
    assert [(a.data["report"], a.data["format"], a.user_id) for a in audits] == [
        ("tickets", "csv", acme.manager.id),
        ("sla", "xlsx", acme.manager.id),
    ]
    assert audits[0].data["params"]["dimension"] == "priority"


def test_export_is_refused_to_a_sales_rep_and_not_audited(app, db, client, acme):
    log_in(client, acme.sales_rep, acme.company)
    html = client.get("/reports/customers").get_data(as_text=True)
    assert "/reports/customers/export.csv" not in html
    for fmt in ("csv", "xlsx"):
        response = client.get(f"/reports/customers/export.{fmt}")
        assert response.status_code == 403
        assert "(export)" in response.get_data(as_text=True)
    with company_scope(acme.company.id):
        assert not db.session.scalars(select(AuditLog).where(AuditLog.action == "export")).all()


def test_query_count_does_not_grow_with_the_number_of_groups(app, db, client, acme, login_as):
    login_as("admin", acme.company)

    def add(n: int, start: int) -> None:
        with company_scope(acme.company.id):
            for i in range(start, start + n):
                customer = Customer(name=f"客户{i}", region=f"地区{i}", kind="consumer")
                db.session.add(customer)
                db.session.flush()
                open_ticket(customer_id=customer.id, subject=f"工单{i}", type="repair")
            db.session.commit()

    def count(path: str) -> int:
        client.get(path)  # warm caches
        db.session.expire_all()
        with QueryCounter(db.engine) as counter:
            assert client.get(path).status_code == 200
        return counter.count

    paths = ["/reports/customers?dimension=region", "/reports/tickets?dimension=assignee"]
    paths += [f"/reports/{r.name}" for r in REPORTS]
    add(2, 0)
    few = {path: count(path) for path in paths}
    add(25, 100)
    many = {path: count(path) for path in paths}
    assert many == few
    assert max(few.values()) <= 15  # the page (user, company, menu…), form choices, the report


def test_tier_moves_are_recorded_but_first_ratings_are_not(app, db, acme):
    with company_scope(acme.company.id):
        moves = db.session.scalars(
            select(AuditLog).where(AuditLog.action == "classify").order_by(AuditLog.id)
        ).all()
        assert [(m.entity_id, m.data) for m in moves] == [
            (acme.ids["li"], {"field": "value_tier", "from": "C", "to": "B"})
        ]
        assert moves[0].user_id is None
        classify.classify_customers()  # nothing changed: nothing recorded
        assert db.session.scalar(
            select(AuditLog.id).where(AuditLog.action == "classify", AuditLog.id > moves[0].id)
        ) is None  # fmt: skip


@pytest.mark.guanxi_plugins("tests.sample_plugin")
def test_a_plugin_report_only_for_the_company_that_enabled_it(app, db, client, company, login_as):
    from tests.sample_plugin import SampleNote

    on, off = company(plugins=["sample"]), company()
    with company_scope(on.id):
        db.session.add_all([SampleNote(text="一"), SampleNote(text="二", state="published")])
        db.session.commit()
    login_as("viewer", on)
    assert 'href="/reports/sample_notes"' in client.get("/reports/").get_data(as_text=True)
    html = client.get("/reports/sample_notes").get_data(as_text=True)
    assert "chart-pie" in html and 'href="/sample/?state=draft"' in html
    assert table_rows(html) == [["draft", "1"], ["published", "1"]]
    login_as("viewer", off)
    assert "sample_notes" not in client.get("/reports/").get_data(as_text=True)
    assert client.get("/reports/sample_notes").status_code == 404
    assert client.get("/reports/sample_notes/export.csv").status_code == 404


def test_reports_page_has_a_section_per_enabled_plugin_titled_with_its_label(
    client, company, login_as
):
    import re

    login_as("manager", company(plugins=["insurance"]))
    html = client.get("/reports/").get_data(as_text=True)
    titles = re.findall(r'<section class="card report-section">\s*<h2>([^<]+)</h2>', html)
    assert titles[-2:] == ["销售", "保险"]  # after the core's sections, in dependency order
    insurance = html.split("<h2>保险</h2>")[1].split("</section>")[0]
    assert 'data-report="insurance_renewal_rate"' in insurance
    assert 'data-report="sales_funnel"' not in insurance


def test_two_reports_with_one_name_stop_the_start():
    def guanxi_reports():
        return [Report(name="twin", label="Twin", query=None, columns=(Column("label", "L"),))]

    modules = []
    for name in ("alpha", "beta"):
        module = types.ModuleType(f"test_plugin_{name}")
        module.manifest = Manifest(name, name.title(), name, "1.0")
        module.guanxi_reports = hookimpl(guanxi_reports)
        modules.append(module)
    with pytest.raises(PluginError, match=r"plugin 'beta' declares report 'twin'.*'alpha'"):
        PluginManager().install(modules)


def widget(html: str, title: str) -> str:
    start = html.index(f'data-widget="{title}"')
    return html[start : html.find("</section>", start)]


def test_dashboard_report_widgets_per_role(app, client, acme, login_as):
    log_in(client, acme.manager, acme.company)
    html = client.get("/dashboard/").get_data(as_text=True)
    sla = widget(html, "SLA compliance")
    assert "<svg" in sla and 'href="/reports/sla?' in sla
    assert "<svg" in widget(html, "Tickets by priority")
    assert "My customers by value tier" not in html

    log_in(client, acme.sales_rep, acme.company)
    html = client.get("/dashboard/").get_data(as_text=True)
    mine = widget(html, "My customers by value tier")
    assert f"owner={acme.sales_rep.id}" in mine and "A · VIP · Customers: 1" in mine
    assert "SLA compliance" not in html

    log_in(client, acme.service_agent, acme.company)
    html = client.get("/dashboard/").get_data(as_text=True)
    box = widget(html, "My open tickets by priority")
    assert f"assignee={acme.service_agent.id}" in box and "<svg" in box


def test_clicking_a_bar_opens_the_filtered_list(app, db, company, make_user, browser, live_url):
    firm = company(name="康泰医药")
    make_user("manager", firm, email="zhao@example.com", password="s3cret-pass")
    with company_scope(firm.id):
        db.session.add_all(
            [Customer(name=f"消费者{i}", kind="consumer") for i in range(3)]
            + [Customer(name=f"企业{i}", kind="business") for i in range(2)]
        )
        db.session.commit()

    page = browser.new_page(locale="zh-CN")
    page.set_default_timeout(10_000)
    page.goto(f"{live_url}/login")
    page.fill("input[name=email]", "zhao@example.com")
    page.fill("input[name=password]", "s3cret-pass")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/dashboard/"))

    page.click("nav.menu a[href='/reports/']")
    page.click("a[href='/reports/customers']")
    page.wait_for_url(re.compile(r"/reports/customers"))
    chart = page.locator("figure.report-chart svg[role=img]")
    assert chart.count() == 1
    page.click("svg a.drill[href='/customers/?kind=business'] .mark")
    page.wait_for_url(re.compile(r"/customers/\?kind=business$"))
    rows = page.locator("table.list.customers tbody tr")
    assert rows.count() == 2
    assert sorted(rows.nth(i).locator("td").nth(1).inner_text() for i in range(2)) == [
        "企业0",
        "企业1",
    ]
    assert "消费者" not in page.inner_text("table.list.customers")
    assert page.locator("select[name=kind] option[selected]").get_attribute("value") == "business"


def test_a_bad_declaration_is_refused_when_made():
    from core.reports import Param

    columns = (Column("label", "L", "", "text"),)
    with pytest.raises(ValueError, match="parameter names"):
        Report(name="x", label="X", query=None, columns=columns, params=(Param("name", "N"),))
    with pytest.raises(ValueError, match="unknown chart 'radar'"):
        Report(name="x", label="X", query=None, columns=columns, chart="radar")
    with pytest.raises(ValueError, match="parameter types"):
        Report(name="x", label="X", query=None, columns=columns, params=(Param("d", "D", "", "x"),))
