"""Every string of the interface is translated, and each user sees their own language."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from babel.messages.mofile import read_mo

ROOT = Path(__file__).resolve().parent.parent


def _i18n_script():
    spec = importlib.util.spec_from_file_location("i18n_script", ROOT / "scripts" / "i18n.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_message_in_the_source_is_translated_into_chinese():
    i18n = _i18n_script()
    catalog = i18n.load("zh")
    catalog.update(i18n.extract(), no_fuzzy_matching=True)
    missing = i18n.untranslated(catalog)
    assert not missing, (
        f"{len(missing)} untranslated (run scripts/i18n.py and fill in the .po): {missing[:10]}"
    )


def test_the_compiled_catalog_matches_the_po():
    i18n = _i18n_script()
    po = i18n.load("zh")
    mo_path = i18n.po_path("zh").with_suffix(".mo")
    with open(mo_path, "rb") as handle:
        mo = read_mo(handle)

    def flat(value):  # plural ids and strings: tuples in the .po, lists in the .mo
        return tuple(value) if isinstance(value, (list, tuple)) else value

    def entries(catalog):
        return {flat(m.id): flat(m.string) for m in catalog if m.id}

    assert entries(po) == entries(mo), "messages.mo is stale: run scripts/i18n.py"


def test_login_page_speaks_the_browsers_language(client):
    chinese = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "密码" in chinese.get_data(as_text=True)
    english = client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert "Password" in english.get_data(as_text=True)
    assert "密码" not in english.get_data(as_text=True)


def test_a_required_field_message_is_in_chinese(app):
    app.config["WTF_CSRF_ENABLED"] = False
    with app.test_client() as client:
        page = client.post(
            "/login",
            data={"email": "", "password": ""},
            headers={"Accept-Language": "zh-CN"},
        ).get_data(as_text=True)
    assert "此字段是必填项" in page or "该字段是必填字段" in page or "必填" in page


def test_each_user_switches_language_and_keeps_it(client, login_as):
    login_as("manager")
    assert "工作台" in client.get("/dashboard/").get_data(as_text=True)
    client.post("/language/en")
    page = client.get("/dashboard/").get_data(as_text=True)
    assert "Dashboard" in page and "工作台" not in page
    client.post("/language/zh_CN")
    assert "工作台" in client.get("/dashboard/").get_data(as_text=True)
