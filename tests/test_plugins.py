"""The plugin manager: loading, ordering, errors naming the plugin, per-company enabling."""

from __future__ import annotations

import types

import pytest
from sqlalchemy import select

from core.plugins import PluginError, PluginManager, hookimpl
from core.plugins.manifest import Manifest
from core.tenancy import company_scope
from tests import sample_plugin
from tests.sample_plugin import SampleNote


def plugin_module(name: str, *depends: str, core: str = ">=0.1", **hooks) -> types.ModuleType:
    module = types.ModuleType(f"test_plugin_{name}")
    module.manifest = Manifest(name, name.title(), name, "1.0", depends=depends, core=core)
    for hook_name, func in hooks.items():
        setattr(module, hook_name, hookimpl(func))
    return module


def test_dependency_cycle_is_refused_naming_the_plugins():
    manager = PluginManager()
    with pytest.raises(PluginError, match=r"cycle: alpha -> beta -> alpha"):
        manager.install([plugin_module("alpha", "beta"), plugin_module("beta", "alpha")])


def test_missing_dependency_is_refused_naming_the_plugin():
    manager = PluginManager()
    with pytest.raises(PluginError, match=r"plugin 'alpha' depends on 'ghost', which is not"):
        manager.install([plugin_module("alpha", "ghost")])


def test_duplicate_name_is_refused():
    manager = PluginManager()
    with pytest.raises(PluginError, match=r"'alpha' is used by both"):
        manager.install([plugin_module("alpha"), plugin_module("alpha")])


def test_misspelt_hook_is_refused_naming_the_plugin():
    manager = PluginManager()

    def guanxi_extension_feilds():
        return []

    with pytest.raises(PluginError, match=r"plugin 'typo'.*guanxi_extension_feilds"):
        manager.install([plugin_module("typo", guanxi_extension_feilds=guanxi_extension_feilds)])


def test_hook_with_unknown_argument_is_refused_naming_the_plugin():
    manager = PluginManager()

    def guanxi_menu_items(company, colour):
        return []

    with pytest.raises(PluginError, match=r"(?s)plugin .badargs.*colour"):
        manager.install([plugin_module("badargs", guanxi_menu_items=guanxi_menu_items)])


def test_incompatible_core_version_is_left_out_and_reported():
    manager = PluginManager()
    manager.install([plugin_module("future", core=">=99")])
    assert "future" not in manager.manifests
    assert "needs core >=99" in manager.incompatible["future"]


def test_plugins_load_in_dependency_order(app):
    manager = app.extensions["guanxi.plugins"]
    order = manager.order
    for name, manifest in manager.manifests.items():
        for dep in manifest.depends:
            assert order.index(dep) < order.index(name)
    assert {"sales", "surveys", "marketing", "pharma", "insurance", "property"} <= set(order)


def test_enabling_a_plugin_enables_its_dependencies(app, company):
    acme = company()
    switched = app.extensions["guanxi.plugins"].enable(acme, "marketing")
    assert switched == ["sales", "marketing"]
    assert {"sales", "marketing"} <= app.extensions["guanxi.plugins"].enabled(acme.id)


def test_disabling_a_depended_on_plugin_is_refused(app, company):
    acme = company(plugins=["marketing"])
    manager = app.extensions["guanxi.plugins"]
    with pytest.raises(PluginError, match=r"'sales' cannot be disabled .* marketing"):
        manager.disable(acme, "sales")
    manager.disable(acme, "marketing")
    manager.disable(acme, "sales")
    assert manager.enabled(acme.id) == {"core"}


def test_unknown_plugin_cannot_be_enabled(app, company):
    with pytest.raises(PluginError, match="no plugin named 'nope'"):
        app.extensions["guanxi.plugins"].enable(company(), "nope")


@pytest.mark.guanxi_plugins("tests.sample_plugin")
def test_disable_and_enable_again_keeps_every_row(app, db, company):
    from core import fields

    manager = app.extensions["guanxi.plugins"]
    acme = company(plugins=["sample"])
    from core.models import Customer

    with company_scope(acme.id):
        customer = Customer(name="协和医院", kind="consumer")
        db.session.add_all([customer, SampleNote(text="keep me")])
        db.session.flush()
        sample_fields = manager.registry.fields_for("customer", ["sample"])
        fields.save(sample_fields, customer.id, {"sample__hospital_beds": 1200})
        db.session.commit()

        manager.disable(acme, "sample")
        db.session.commit()
        assert "sample" not in manager.enabled(acme.id)
        manager.enable(acme, "sample")
        db.session.commit()

        assert db.session.scalars(select(SampleNote.text)).all() == ["keep me"]
        values = fields.load(sample_fields, [customer.id])
        assert values[customer.id]["sample__hospital_beds"] == 1200


@pytest.mark.guanxi_plugins("tests.sample_plugin")
def test_hooks_of_a_disabled_plugin_are_not_called_for_that_company(app, db, company, make_user):
    from core import workflow

    a = company(code="a")
    b = company(code="b", plugins=["sample"])
    sample_plugin.calls.clear()
    for co in (a, b):
        user = make_user("agent", co)
        with company_scope(co.id):
            note = SampleNote(text="x")
            db.session.add(note)
            db.session.flush()
            workflow.transition(note, "publish", user=user)
            db.session.commit()
    assert sample_plugin.calls == [("after_transition", b.id)]


@pytest.mark.guanxi_plugins("tests.sample_plugin")
def test_enabled_and_disabled_hooks_run_on_that_plugin_only(app, company):
    manager = app.extensions["guanxi.plugins"]
    acme = company()
    sample_plugin.calls.clear()
    manager.enable(acme, "sample")
    manager.disable(acme, "sample")
    assert sample_plugin.calls == [("enabled", acme.id), ("disabled", acme.id)]


@pytest.mark.guanxi_plugins("tests.sample_plugin")
def test_pages_and_menu_of_a_plugin_exist_only_where_enabled(app, client, company, login_as):
    off, on = company(), company(plugins=["sample"])
    login_as("agent", off)
    assert client.get("/sample/").status_code == 404
    assert "/sample/" not in client.get("/customers/").get_data(as_text=True)
    login_as("agent", on)
    assert client.get("/sample/").get_data(as_text=True) == "sample page"
    assert 'href="/sample/"' in client.get("/customers/").get_data(as_text=True)


def test_menu_groups_a_plugins_entries_into_one_drop_down(app, client, company, login_as):
    """The insurance company's menu bar keeps one line: sales' and insurance's pages sit in a
    drop-down each, the page's own entry marked inside its group; a group of one entry (a
    sales rep sees one pharma page) is a plain link."""
    import re

    insurer = company(plugins=["insurance"])
    login_as("manager", insurer)
    html = client.get("/insurance/policies").get_data(as_text=True)
    nav = html.split('<nav class="menu">')[1].split("</nav>")[0]
    groups = re.findall(r'<details class="menu-group( active)?">\s*<summary>([^<]+)</summary>', nav)
    assert [(bool(a), t) for a, t in groups] == [(False, "销售"), (True, "保险")]
    insurance = nav.split("<summary>保险</summary>")[1].split("</details>")[0]
    assert re.findall(r'href="(/insurance/[a-z/]+)"', insurance) == [
        "/insurance/agents",
        "/insurance/policies",
        "/insurance/commissions/statements",
        "/insurance/leads",
    ]
    assert 'href="/insurance/policies"\n             class="active" aria-current="page"' in nav
    assert 'href="/customers/"' in nav.split("<details")[0]  # core entries stay plain links


def test_menu_bar_places_a_group_at_its_first_entry_and_leaves_one_entry_alone():
    from core.web.helpers import MenuGroup, MenuItem, menu_bar

    a = MenuItem("a.x", "A", order=1)
    b = MenuItem("b.x", "B", order=2, group="G", group_zh="组")
    c = MenuItem("c.x", "C", order=3)
    d = MenuItem("d.x", "D", order=4, group="G")
    e = MenuItem("e.x", "E", order=5, group="Alone")
    assert menu_bar([a, b, c, d, e]) == [a, MenuGroup("G", "组", (b, d)), c, e]


def test_plugins_list_names_versions_dependencies_and_companies(app, company):
    from core.cli import main as cli

    company(code="pharma-co", plugins=["pharma"])
    result = app.test_cli_runner().invoke(cli, ["plugins", "list"])
    assert result.exit_code == 0, result.output
    line = next(row for row in result.output.splitlines() if row.startswith("pharma"))
    assert "0.2.0" in line and "sales" in line and "pharma-co" in line
    sales_line = next(row for row in result.output.splitlines() if row.startswith("sales"))
    assert "pharma-co" in sales_line


def test_plugins_enable_and_disable_from_the_command_line(app, company):
    from core.cli import main as cli

    company(code="acme")
    runner = app.test_cli_runner()
    result = runner.invoke(cli, ["plugins", "enable", "marketing", "--company", "acme"])
    assert result.exit_code == 0, result.output
    assert "sales" in result.output and "marketing" in result.output
    result = runner.invoke(cli, ["plugins", "disable", "sales", "--company", "acme"])
    assert result.exit_code != 0
    assert "marketing" in result.output


def test_a_company_is_created_from_the_command_line_with_its_plugins(app, db):
    from core.cli import main as cli
    from core.models import Company

    runner = app.test_cli_runner()
    result = runner.invoke(cli, ["companies", "create", "kt", "康泰医药", "--plugin", "pharma"])
    assert result.exit_code == 0, result.output
    company = db.session.scalar(db.select(Company).where(Company.code == "kt"))
    assert {"sales", "pharma"} <= app.extensions["guanxi.plugins"].enabled(company.id)
    again = runner.invoke(cli, ["companies", "create", "kt", "又一个"])
    assert again.exit_code != 0 and "exists" in again.output
    bad = runner.invoke(cli, ["companies", "create", "x", "X", "--plugin", "nope"])
    assert bad.exit_code != 0 and "no plugin named 'nope'" in bad.output
    assert db.session.scalar(db.select(Company).where(Company.code == "x")) is None


def test_trace_hooks_logs_each_call_with_plugin_and_duration(app, company, make_app, caplog):
    import logging

    acme = company()
    traced = make_app(TRACE_HOOKS=True, PLUGINS=["tests.sample_plugin"])
    manager = traced.extensions["guanxi.plugins"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="guanxi.hooks"):
        manager.hooks(frozenset({"core", "sample"})).guanxi_menu_items(company=acme)
    lines = [r.getMessage() for r in caplog.records if r.name == "guanxi.hooks"]
    assert any(
        line.startswith("hook guanxi_menu_items plugin=sample ") and line.endswith(" ms ok")
        for line in lines
    ), lines
    assert not any("plugin=sales" in line for line in lines)  # only the enabled plugins ran
