"""The plugins admin page: list, enable/disable with dependency checks, typed settings."""

from __future__ import annotations

import pytest

from core.plugins import current
from core.plugins.settings import Setting, plugin_settings

pytestmark = pytest.mark.guanxi_plugins("tests.sample_plugin")


def test_admins_see_plugins_with_version_dependencies_hooks_and_companies(
    app, client, company, login_as
):
    acme = company(plugins=["pharma"], name="甲公司")
    login_as("admin", acme)
    page = client.get("/settings/plugins/").get_data(as_text=True)
    assert 'data-plugin="sample"' in page and "1.2.3" in page
    assert "guanxi_record_panels" in page  # hooks the sample plugin implements
    assert 'data-plugin="pharma" data-enabled="yes"' in page
    assert 'data-plugin="sample" data-enabled="no"' in page
    assert "甲公司" in page
    assert "/settings/plugins/" in client.get("/settings/").get_data(as_text=True)


def test_only_admins_manage_plugins(client, company, login_as):
    login_as("manager", company())
    assert client.get("/settings/plugins/").status_code == 403
    assert client.post("/settings/plugins/sample/enable").status_code == 403
    assert "/settings/plugins/" not in client.get("/settings/").get_data(as_text=True)


def test_enable_pulls_in_dependencies_and_disable_respects_dependents(
    app, client, company, login_as
):
    acme = company()
    login_as("admin", acme)
    page = client.get("/settings/plugins/").get_data(as_text=True)
    assert "sales" in page.split('data-plugin="pharma"')[1].split("</tr>")[0]
    client.post("/settings/plugins/pharma/enable")
    manager = current()
    assert {"sales", "pharma"} <= manager.enabled(acme.id)
    refused = client.post("/settings/plugins/sales/disable", follow_redirects=True)
    assert "pharma" in refused.get_data(as_text=True)
    assert "sales" in manager.enabled(acme.id)
    client.post("/settings/plugins/pharma/disable")
    assert "pharma" not in manager.enabled(acme.id)


def test_settings_form_from_the_typed_schema(app, client, company, login_as, monkeypatch):
    from dataclasses import replace

    manager = current()
    schema = (
        Setting("limit", "integer", "Limit", "上限", default=5, min=1, max=10),
        Setting(
            "mode",
            "choice",
            "Mode",
            "模式",
            default="a",
            choices=(("a", "A", "甲"), ("b", "B", "乙")),
        ),
        Setting("loud", "boolean", "Loud", "大声", default=False),
    )
    monkeypatch.setitem(
        manager.manifests, "sample", replace(manager.manifests["sample"], settings=schema)
    )
    acme = company(plugins=["sample"])
    login_as("admin", acme)
    form = client.get("/settings/plugins/sample/settings").get_data(as_text=True)
    assert 'name="limit"' in form and 'value="5"' in form and "<select" in form
    bad = client.post("/settings/plugins/sample/settings", data={"limit": "99", "mode": "a"})
    assert bad.status_code == 422 and "at most 10" in bad.get_data(as_text=True)
    assert plugin_settings("sample", acme.id)["limit"] == 5
    ok = client.post(
        "/settings/plugins/sample/settings", data={"limit": "7", "mode": "b", "loud": ["", "1"]}
    )
    assert ok.status_code == 302
    assert plugin_settings("sample", acme.id) == {"limit": 7, "mode": "b", "loud": True}
    other = company(plugins=["sample"])
    assert plugin_settings("sample", other.id) == {"limit": 5, "mode": "a", "loud": False}
