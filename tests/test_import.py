"""Import of customers, contacts, channels, interactions and plugin records (core.importer)."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from core import bulkload, classify, importer, tasks
from core.db import db as handle
from core.models import AuditLog, BackgroundTask, Channel, Contact, Customer, Interaction
from core.tenancy import company_scope

pytestmark = pytest.mark.guanxi_plugins("tests.sample_plugin")


@pytest.fixture(autouse=True, params=["one process", "reader process"])
def reader(request, monkeypatch):
    """Every test here runs twice: as a small file imports (one process), and as a large one
    does (a second process reads and converts the file while this one writes; on SQLite an
    all-or-nothing import also drops and rebuilds the indexes)."""
    if request.param == "reader process":
        monkeypatch.setattr(bulkload, "MIN_ROWS", 0)
    return request.param


def write_csv(path, rows, encoding="utf-8-sig"):
    with path.open("w", encoding=encoding, newline="") as out:
        csv.writer(out).writerows(rows)
    return path


def customers(*columns):
    """(code, name, phone) of every customer of the company in scope, by id."""
    cols = columns or (Customer.code, Customer.name, Customer.phone)
    return [tuple(r) for r in handle.session.execute(select(*cols).order_by(Customer.id))]


@pytest.fixture
def shop(company, make_user):
    """A company with the pharma plugin (and sales, which it needs) and its admin."""
    co = company(plugins=["pharma"])
    return co, make_user("admin", co)


def run(path, kind="customers", user=None, **options):
    return importer.import_file(path, kind, user_id=user.id if user else None, **options)


# -- errors a clerk can act on ------------------------------------------------------------------


def test_each_bad_row_gets_one_error_naming_its_line_and_column(shop, tmp_path):
    co, user = shop
    path = write_csv(
        tmp_path / "bad.csv",
        [
            ["编号", "客户名称", "手机", "类型"],
            ["C1", "张三", "13800138000", "consumer"],
            ["C2", "", "13800138001", "consumer"],  # missing name
            ["C3", "王五", "138-abc", "consumer"],  # malformed phone
            ["C4", "赵六", "13800138003", "外星人"],  # unknown choice
            ["C1", "孙七", "13800138004", "consumer"],  # same code as row 2
            ["C6", "周八", "13800138005", "医院"],  # a label of the pharma plugin's kind: fine
        ],
    )
    report = tmp_path / "errors.csv"
    with company_scope(co.id):
        outcome = run(path, user=user, errors_path=report)
        assert outcome["status"] == "failed"
        assert outcome["rows"] == 6 and outcome["failed"] == 4 and outcome["created"] == 0
        found = [(e["line"], e["column"]) for e in outcome["errors"]]
        assert found == [(3, "客户名称"), (4, "手机"), (5, "类型"), (6, "编号")]
        assert "2" in outcome["errors"][3]["message"]  # "same as row 2"
        assert customers() == []  # all or nothing: nothing written
    with report.open(encoding="utf-8-sig") as handle_:
        lines = list(csv.reader(handle_))
    assert lines[0] == ["line", "errors", "编号", "客户名称", "手机", "类型"]
    assert [r[0] for r in lines[1:]] == ["3", "4", "5", "6"]
    assert lines[2][1].startswith("手机:") and lines[2][2:] == ["C3", "王五", "138-abc", "consumer"]


def test_a_corrected_error_report_imports_as_it_is(shop, tmp_path):
    co, user = shop
    path = write_csv(
        tmp_path / "in.csv",
        [["编号", "客户名称", "手机"], ["C1", "张三", "13800138000"], ["C2", "李四", "bad"]],
    )
    report = tmp_path / "errors.csv"
    with company_scope(co.id):
        outcome = run(path, user=user, mode="batched", errors_path=report)
        assert (outcome["created"], outcome["failed"]) == (1, 1)
        rows = list(csv.reader(report.open(encoding="utf-8-sig")))
        rows[1][4] = "13900139000"  # the clerk fixes the phone in the report
        write_csv(report, rows)
        again = run(report, user=user, mode="batched")
        assert (again["created"], again["failed"]) == (1, 0)
        assert customers() == [("C1", "张三", "13800138000"), ("C2", "李四", "13900139000")]


def test_mapping_problems_stop_the_import_before_any_row(shop, tmp_path):
    co, user = shop
    path = write_csv(tmp_path / "x.csv", [["code", "phone"], ["C1", "13800138000"]])
    with company_scope(co.id):
        with pytest.raises(importer.MappingError) as refused:
            run(path, user=user)
        assert any("名称" in p or "Name" in p for p in refused.value.problems)
        with pytest.raises(importer.MappingError):
            run(path, user=user, mapping={"code": "code", "phone": "no_such_column"})
        with pytest.raises(importer.MappingError):
            run(path, kind="tickets", user=user)
        assert customers() == []


# -- modes ----------------------------------------------------------------------------------------


def _many(tmp_path, n, bad_line=None):
    rows = [["code", "name", "phone"]]
    for i in range(n):
        rows.append([f"K{i:04d}", f"客户{i}", f"139{i:08d}"])
    if bad_line is not None:
        rows[bad_line - 1][2] = "not a phone"
    return write_csv(tmp_path / "many.csv", rows)


def test_batched_import_keeps_good_batches_and_reports_bad_rows(shop, tmp_path):
    co, user = shop
    path = _many(tmp_path, 25, bad_line=12)
    with company_scope(co.id):
        outcome = run(path, user=user, mode="batched", batch=10)
        assert (outcome["created"], outcome["failed"]) == (24, 1)
        assert outcome["errors"][0]["line"] == 12
        assert handle.session.scalar(select(func.count(Customer.id))) == 24


def test_a_batched_import_that_fails_midway_resumes_without_duplicates(
    shop, tmp_path, failing_import
):
    co, user = shop
    path = _many(tmp_path, 50)
    # the third batch: the database gives out after writing it
    gone = handle.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))
    calls = failing_import(3, gone, write_first=True)
    with company_scope(co.id):
        task = tasks.create(
            "import", importer.run, user_id=user.id, path=str(path), resource="customers",
            mode="batched", batch=10, filename="many.csv",
        )  # fmt: skip
        failed = tasks.execute(task.id)
        assert failed.status == "failed" and "disk I/O" in failed.error
        assert failed.result["rows_committed"] == 20
        assert handle.session.scalar(select(func.count(Customer.id))) == 20
        resumed = tasks.execute(task.id)
        assert resumed.status == "done", resumed.error
        assert resumed.result["created"] == 50 and resumed.result["rows"] == 50
        codes = [c for (c,) in customers(Customer.code)]
        assert codes == [f"K{i:04d}" for i in range(50)]
        assert calls["n"] == 6  # batches 1-2, the failed 3rd, then 3-5 again
        audits = handle.session.scalars(
            select(AuditLog).where(AuditLog.action == "import").order_by(AuditLog.id)
        )
        assert [a.data["status"] for a in audits] == ["interrupted", "done"]


def test_atomic_import_with_a_database_failure_writes_nothing(shop, tmp_path, failing_import):
    co, user = shop
    path = _many(tmp_path, 12000)  # three chunks
    failing_import(2, RuntimeError("boom"), method="_insert_extension")
    with company_scope(co.id), pytest.raises(RuntimeError):
        run(path, user=user)
    with company_scope(co.id):
        assert customers() == []


# -- encodings and formats ------------------------------------------------------------------------


def test_gbk_csv_without_bom_imports(shop, tmp_path):
    co, user = shop
    path = write_csv(
        tmp_path / "gbk.csv",
        [["客户编号", "姓名", "联系电话", "地区"], ["G1", "欧阳娜娜", "021-6552 9988", "上海市"]],
        encoding="gbk",
    )
    with company_scope(co.id):
        outcome = run(path, user=user)
        assert outcome["status"] == "done", outcome["errors"]
        assert customers(Customer.code, Customer.name, Customer.phone, Customer.region) == [
            ("G1", "欧阳娜娜", "021-6552 9988", "上海市")
        ]


def test_xlsx_imports_with_numbers_and_dates_as_excel_stores_them(shop, tmp_path):
    from openpyxl import Workbook

    co, user = shop
    book = Workbook()
    sheet = book.active
    sheet.append(["编号", "客户名称", "手机", "收入", "床位数"])
    sheet.append([1001, "第一人民医院", 13800138000, 1250000.5, 800])
    sheet.append([None, None, None, None, None])  # a blank row
    sheet.append(["1002", "中医院", "13900139000", "20000", None])
    path = tmp_path / "hospitals.xlsx"
    book.save(path)
    with company_scope(co.id):
        outcome = run(path, user=user)
        assert outcome["status"] == "done", outcome["errors"]
        assert outcome["rows"] == 2
        rows = customers(Customer.code, Customer.phone, Customer.revenue, Customer.value_tier)
        assert rows == [
            ("1001", "13800138000", Decimal("1250000.50"), "A"),
            ("1002", "13900139000", Decimal("20000.00"), "C"),
        ]
        beds = handle.session.execute(handle.text("SELECT beds FROM pharma_customer_ext")).all()
        assert [b for (b,) in beds] == [800]


# -- plugin fields --------------------------------------------------------------------------------


def test_plugin_fields_import_only_where_the_plugin_is_enabled(company, make_user, tmp_path):
    with_pharma, without = company(plugins=["pharma"]), company()
    path = write_csv(
        tmp_path / "doctors.csv",
        [["客户名称", "科室", "职称", "处方潜力（0–100）"], ["李医生", "心内科", "主任医师", "80"]],
    )
    with company_scope(with_pharma.id):
        resource = importer.resource_for("customers")
        suggested = importer.suggest(["客户名称", "科室", "职称", "处方潜力（0–100）"], resource)
        assert suggested == {
            "客户名称": "name",
            "科室": "pharma__department",
            "职称": "pharma__title",
            "处方潜力（0–100）": "pharma__prescription_potential",
        }
        outcome = run(path, user=make_user("admin", with_pharma))
        assert outcome["created"] == 1
        row = handle.session.execute(
            handle.text("SELECT department, title, prescription_potential FROM pharma_customer_ext")
        ).one()
        assert tuple(row) == ("心内科", "chief", 80)
    with company_scope(without.id):
        resource = importer.resource_for("customers")
        assert importer.suggest(["科室"], resource) == {"科室": None}
        with pytest.raises(importer.MappingError, match="pharma__department"):
            run(path, user=make_user("admin", without), mapping={
                "客户名称": "name", "科室": "pharma__department"})  # fmt: skip
        assert customers() == []


def test_plugin_field_bounds_are_checked(shop, tmp_path):
    co, user = shop
    path = write_csv(tmp_path / "p.csv", [["name", "pharma__beds"], ["某医院", "99999"]])
    with company_scope(co.id):
        outcome = run(path, user=user)
        assert outcome["errors"] == [
            {"line": 2, "column": "pharma__beds", "message": outcome["errors"][0]["message"]}
        ]
        assert "20000" in outcome["errors"][0]["message"]


# -- duplicates -----------------------------------------------------------------------------------


@pytest.fixture
def existing(shop):
    co, user = shop
    with company_scope(co.id):
        handle.session.add_all(
            [
                Customer(code="A1", name="老客户甲", phone="13800138000", region="北京"),
                Customer(code=None, name="老客户乙", phone="+86 139-0013-9000", region="上海"),
            ]
        )
        handle.session.commit()
    return co, user


def _dupes(tmp_path):
    return write_csv(
        tmp_path / "d.csv",
        [
            ["code", "name", "phone", "region"],
            ["A1", "甲（新）", "13700137000", ""],  # same code as an existing customer
            ["", "乙（新）", "13900139000", "深圳"],  # same phone digits as another
            ["N1", "新客户", "13600136000", "广州"],
        ],
    )


def test_duplicates_of_existing_customers_are_skipped(existing, tmp_path):
    co, user = existing
    with company_scope(co.id):
        outcome = run(_dupes(tmp_path), user=user, on_duplicate="skip")
        assert (outcome["created"], outcome["skipped"], outcome["updated"]) == (1, 2, 0)
        assert customers(Customer.name, Customer.region) == [
            ("老客户甲", "北京"), ("老客户乙", "上海"), ("新客户", "广州")]  # fmt: skip


def test_duplicates_of_existing_customers_update_them(existing, tmp_path):
    co, user = existing
    with company_scope(co.id):
        before = handle.session.scalar(select(Customer.version).where(Customer.code == "A1"))
        outcome = run(_dupes(tmp_path), user=user, on_duplicate="update")
        assert (outcome["created"], outcome["skipped"], outcome["updated"]) == (1, 0, 2)
        handle.session.expire_all()
        assert customers(Customer.name, Customer.phone, Customer.region) == [
            ("甲（新）", "13700137000", "北京"),  # a blank cell keeps the value
            ("乙（新）", "13900139000", "深圳"),
            ("新客户", "13600136000", "广州"),
        ]
        after = handle.session.scalar(select(Customer.version).where(Customer.code == "A1"))
        assert after == before + 1


def test_duplicates_of_existing_customers_can_be_created_anyway(existing, tmp_path):
    co, user = existing
    with company_scope(co.id):
        outcome = run(_dupes(tmp_path), user=user, on_duplicate="create")
        assert (outcome["created"], outcome["skipped"], outcome["updated"]) == (3, 0, 0)
        assert handle.session.scalar(select(func.count(Customer.id))) == 5


def test_a_phone_twice_in_one_file_is_an_error_on_the_second(shop, tmp_path):
    co, user = shop
    path = write_csv(
        tmp_path / "p.csv",
        [["name", "phone"], ["甲", "13800138000"], ["乙", "+86 138 0013 8000"]],
    )
    with company_scope(co.id):
        outcome = run(path, user=user)
        assert [(e["line"], e["column"]) for e in outcome["errors"]] == [(3, "phone")]


# -- what the import does besides inserting rows -------------------------------------------------


def test_imported_customers_are_classified_as_the_rules_would(shop, tmp_path):
    co, user = shop
    rows = [["name", "status", "revenue", "owner"]]
    statuses = ["potential", "existing", "inactive", "lost"]
    for i, revenue in enumerate(["", "0", "19999.99", "20000", "200000", "1000000", "5e3"]):
        rows.append([f"客户{i}", statuses[i % 4], revenue, user.email])
    path = write_csv(tmp_path / "c.csv", rows)
    with company_scope(co.id):
        outcome = run(path, user=user)
        assert outcome["created"] == 7, outcome["errors"]
        assert classify.classify_customers() == {
            "value_tier": 0, "loyalty": 0, "lifecycle_stage": 0}  # fmt: skip
        assert {c.owner_id for c in handle.session.scalars(select(Customer))} == {user.id}


def test_tags_owner_and_channel_by_name(shop, make_user, tmp_path):
    co, user = shop
    rep = make_user("sales_rep", co)
    with company_scope(co.id):
        handle.session.add(Channel(name="华东代理", code="EAST"))
        handle.session.commit()
        path = write_csv(
            tmp_path / "c.csv",
            [
                ["客户名称", "负责人", "渠道", "标签"],
                ["甲", rep.email.upper(), "华东代理", "VIP，重点客户"],
                ["乙", rep.name, "EAST", "VIP"],
                ["丙", "nobody@example.com", "没有的渠道", ""],
            ],
        )
        outcome = run(path, user=user)
        assert [(e["line"], e["column"]) for e in outcome["errors"]] == [(4, "负责人"), (4, "渠道")]
        run(path, user=user, mode="batched")
        channel = handle.session.scalar(select(Channel.id))
        assert customers(Customer.name, Customer.owner_id, Customer.channel_id) == [
            ("甲", rep.id, channel), ("乙", rep.id, channel)]  # fmt: skip
        from core.customers import tags_of

        ids = [i for (i,) in customers(Customer.id)]
        assert tags_of(ids) == {ids[0]: ["VIP", "重点客户"], ids[1]: ["VIP"]}


def test_contacts_name_their_customer_by_code(shop, tmp_path):
    co, user = shop
    with company_scope(co.id):
        handle.session.add(Customer(code="H1", name="第一人民医院"))
        handle.session.commit()
        path = write_csv(
            tmp_path / "contacts.csv",
            [
                ["客户", "姓名", "职务", "决策角色", "手机"],
                ["H1", "王主任", "科主任", "decider", "13800138000"],
                ["H9", "李医生", "", "", ""],
            ],
        )
        outcome = run(path, "contacts", user=user, mode="batched")
        assert outcome["created"] == 1
        assert [(e["line"], e["column"]) for e in outcome["errors"]] == [(3, "客户")]
        contact = handle.session.scalar(select(Contact))
        assert (contact.name, contact.title, contact.decision_role) == (
            "王主任",
            "科主任",
            "decider",
        )


def test_interactions_keep_the_customers_last_contact(shop, tmp_path):
    co, user = shop
    with company_scope(co.id):
        handle.session.add(Customer(code="K1", name="甲"))
        handle.session.commit()
        path = write_csv(
            tmp_path / "calls.csv",
            [
                ["客户编号", "类型", "时间", "目的", "外部编号"],
                ["K1", "电话", "2026-03-01 09:30", "回访", "call-1"],
                ["K1", "拜访", "2026/3/5 14:00", "上门", "call-2"],
                ["K1", "电话", "2099-01-01", "未来", "call-3"],
                ["K1", "电话", "2026-03-06", "重复", "call-1"],
            ],
        )
        outcome = run(path, "interactions", user=user, mode="batched")
        assert outcome["created"] == 2
        assert [(e["line"], e["column"]) for e in outcome["errors"]] == [
            (4, "时间"),
            (5, "外部编号"),
        ]
        calls = handle.session.scalars(select(Interaction).order_by(Interaction.id)).all()
        assert [c.kind for c in calls] == ["call", "visit"]
        assert calls[0].occurred_at.isoformat() == "2026-03-01T01:30:00+00:00"  # Shanghai time
        assert {c.user_id for c in calls} == {user.id}
        customer = handle.session.scalar(select(Customer))
        handle.session.refresh(customer)
        assert customer.last_contact_at == calls[1].occurred_at
        again = run(path, "interactions", user=user, mode="batched")
        assert again["skipped"] == 2  # the same external ids again: not logged twice


def test_channels_import_with_their_parent(shop, tmp_path):
    co, user = shop
    with company_scope(co.id):
        handle.session.add(Channel(name="总代理", code="TOP"))
        handle.session.commit()
        path = write_csv(
            tmp_path / "ch.csv",
            [
                ["编号", "渠道名称", "渠道类型", "上级渠道", "佣金率"],
                ["S1", "二级代理", "代理商", "TOP", "3.5"],
            ],
        )
        outcome = run(path, "channels", user=user)
        assert outcome["created"] == 1, outcome["errors"]
        child = handle.session.scalar(select(Channel).where(Channel.code == "S1"))
        assert (child.type, child.commission_rate, child.status) == (
            "agent",
            Decimal("3.50"),
            "active",
        )
        assert child.parent_id == handle.session.scalar(
            select(Channel.id).where(Channel.code == "TOP")
        )


def test_a_plugin_resource_imports_through_the_same_mechanism(company, make_user, tmp_path):
    co = company(plugins=["sample"])
    path = write_csv(tmp_path / "notes.csv", [["text"], ["第一条"], ["第二条"]])
    with company_scope(co.id):
        assert "sample_notes" in importer.resources()
        outcome = run(path, "sample_notes", user=make_user("admin", co))
        assert outcome["created"] == 2
        from tests.sample_plugin import SampleNote

        notes = handle.session.scalars(select(SampleNote).order_by(SampleNote.id)).all()
        assert [(n.text, n.state) for n in notes] == [("第一条", "draft"), ("第二条", "draft")]
    other = company()
    with company_scope(other.id):
        assert "sample_notes" not in importer.resources()


def test_every_import_is_audited(shop, tmp_path):
    co, user = shop
    path = _many(tmp_path, 3)
    with company_scope(co.id):
        run(path, user=user, filename="客户.csv")
        row = handle.session.scalar(select(AuditLog).where(AuditLog.action == "import"))
        assert (row.entity_type, row.user_id) == ("customer", user.id)
        assert row.data["file"] == "客户.csv" and row.data["created"] == 3


# -- background tasks -----------------------------------------------------------------------------


def _slow(progress, *, steps):
    for i in range(1, steps + 1):
        time.sleep(0.01)
        progress.advance(i, steps)
    return {"status": "done", "steps": steps}


def test_a_background_task_runs_in_a_thread_and_reports_progress(app, company, make_user):
    co = company()
    user = make_user("admin", co)
    with company_scope(co.id):
        task = tasks.submit("demo", _slow, user_id=user.id, steps=40)
        assert task.status == "queued"
        seen = set()
        for _ in range(400):
            state = tasks.snapshot(tasks.get(task.id))
            seen.add(state["status"])
            if state["finished"]:
                break
            time.sleep(0.01)
        tasks.wait(task.id)
        done = tasks.get(task.id)
        assert (done.status, done.done, done.total) == ("done", 40, 40)
        assert done.result["steps"] == 40 and done.started_at and done.finished_at
        assert "running" in seen or "queued" in seen
        assert tasks.snapshot(done)["percent"] == 100


def _broken(progress):
    raise ValueError("nothing to do")


def test_a_failing_task_records_its_error(app, company):
    co = company()
    with company_scope(co.id):
        task = tasks.submit("demo", _broken)
        tasks.wait(task.id)
        failed = tasks.get(task.id)
        assert failed.status == "failed" and "nothing to do" in failed.error


def test_tasks_refuse_functions_a_worker_could_not_find(app, company):
    co = company()
    with company_scope(co.id), pytest.raises(ValueError):
        tasks.create("demo", lambda progress: None)
    with company_scope(co.id):
        assert handle.session.scalar(select(func.count(BackgroundTask.id))) == 0


def test_a_task_of_another_company_is_not_found(app, company):
    a, b = company(), company()
    with company_scope(a.id):
        task = tasks.create("demo", _slow, steps=1)
    with company_scope(b.id):
        assert tasks.get(task.id) is None


def test_detect_encodings():
    from core import tabular

    text = "编号,名称\n1,张三\n"
    assert tabular.detect_encoding(text.encode("utf-8-sig")) == "utf-8-sig"
    assert tabular.detect_encoding(text.encode("utf-8")) == "utf-8"
    assert tabular.detect_encoding(text.encode("gbk")) == "gb18030"
    assert tabular.detect_encoding(text.encode("gb18030")) == "gb18030"
    cut = "名称" * 10
    assert tabular.detect_encoding(cut.encode("utf-8")[:-1]) == "utf-8"  # cut mid-character
    assert re.match(r"utf-16", tabular.detect_encoding(text.encode("utf-16")))
    assert io  # noqa: B018


# -- command line ---------------------------------------------------------------------------------


def test_guanxi_import_from_the_command_line(app, shop, tmp_path):
    from core.cli import main

    co, user = shop
    path = _many(tmp_path, 30, bad_line=5)
    out = tmp_path / "fix-me.csv"
    runner = app.test_cli_runner()
    refused = runner.invoke(
        main, ["import", "customers", str(path), "--company", co.code, "--errors", str(out)]
    )
    assert refused.exit_code == 1
    assert "line 5, phone:" in refused.output and "created 0" in refused.output
    assert list(csv.reader(out.open(encoding="utf-8-sig")))[1][0] == "5"
    batched = runner.invoke(
        main,
        ["import", "customers", str(path), "--company", co.code, "--batch", "10",
         "--user", user.email],
    )  # fmt: skip
    assert batched.exit_code == 0, batched.output
    assert "created 29" in batched.output and "with errors 1" in batched.output
    with company_scope(co.id):
        assert handle.session.scalar(select(func.count(Customer.id))) == 29
        audit = handle.session.scalars(
            select(AuditLog).where(AuditLog.action == "import").order_by(AuditLog.id)
        ).all()
        assert [a.user_id for a in audit] == [None, user.id]
    mapped = runner.invoke(
        main,
        ["import", "customers", str(path), "--company", co.code, "--on-duplicate", "update",
         "--mapping", '{"code": "code", "name": "notes"}'],
    )  # fmt: skip
    assert mapped.exit_code == 1 and "名称" in mapped.output  # a name column is required
    unknown = runner.invoke(main, ["import", "robots", str(path), "--company", co.code])
    assert unknown.exit_code != 0 and "customers" in unknown.output


def test_guanxi_import_resumes_a_failed_batched_import(app, shop, tmp_path, failing_import):
    from core.cli import main

    co, _user = shop
    path = _many(tmp_path, 30)
    failing_import(2, RuntimeError("the disk is full"))
    runner = app.test_cli_runner()
    args = ["import", "customers", str(path), "--company", co.code, "--batch", "10"]
    failed = runner.invoke(main, args)
    assert failed.exit_code == 1 and "the disk is full" in failed.output
    resume = re.search(r"--resume (\d+)", failed.output)
    assert resume, failed.output
    done = runner.invoke(main, [*args, "--resume", resume.group(1)])
    assert done.exit_code == 0, done.output
    with company_scope(co.id):
        assert [c for (c,) in customers(Customer.code)] == [f"K{i:04d}" for i in range(30)]


# -- web --------------------------------------------------------------------------------------


def _wait_for(client, task_id, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get(f"/imports/{task_id}/status").get_json()
        if state["finished"]:
            return state
        time.sleep(0.05)
    raise AssertionError("the import did not finish")


def _upload(client, data: bytes, name="客户.csv", kind="customers"):
    return client.post(
        "/imports/",
        data={"kind": kind, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_web_import_from_upload_to_result(client, company, login_as):
    co = company(plugins=["pharma"])
    login_as("manager", co)
    page = client.get("/imports/")
    assert page.status_code == 200 and 'type="file"' in page.text
    data = (
        "编号,客户名称,手机,床位数,备注\nW1,第一人民医院,13800138000,800,好\nW2,中医院,bad,100,\n"
    )
    uploaded = _upload(client, data.encode("gbk"))
    assert uploaded.status_code == 302
    mapping = client.get(uploaded.location)
    assert mapping.status_code == 200
    text = mapping.text
    assert "第一人民医院" in text and "13800138000" in text  # the preview
    assert '<option value="name" selected>' in text
    assert '<option value="pharma__beds" selected>' in text  # a plugin field, suggested
    assert '<option value="notes" selected>' in text
    started = client.post(
        uploaded.location,
        data={"map-0": "code", "map-1": "name", "map-2": "phone", "map-3": "pharma__beds",
              "map-4": "", "on_duplicate": "skip", "mode": "batched", "batch": "100"},
    )  # fmt: skip
    assert started.status_code == 302
    task_id = int(started.location.rstrip("/").rsplit("/", 1)[1])
    progress = client.get(f"/imports/{task_id}")
    assert progress.status_code == 200
    assert "imports.js" in progress.text or 'id="import-result"' in progress.text
    state = _wait_for(client, task_id)
    assert state["status"] == "done" and state["percent"] == 100
    assert state["counts"] == {"rows": 2, "created": 1, "updated": 0, "skipped": 0, "failed": 1}
    tasks.wait(task_id)
    result = client.get(f"/imports/{task_id}")
    assert 'data-count="created">1<' in result.text and 'id="error-report"' in result.text
    assert "Not a phone number" in result.text or "bad" in result.text
    report = client.get(f"/imports/{task_id}/errors.csv")
    assert report.status_code == 200 and report.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(report.data.decode("utf-8-sig"))))
    assert rows[0][:3] == ["line", "errors", "编号"] and rows[1][0] == "3"
    with company_scope(co.id):
        assert customers(Customer.code, Customer.notes) == [("W1", None)]  # 备注 not mapped
    assert "W1" not in client.get("/imports/").text  # the list shows files, not rows
    assert f'href="/imports/{task_id}"' in client.get("/imports/").text


def test_web_import_refused_rows_and_mapping_problems(client, company, login_as):
    co = company()
    login_as("admin", co)
    uploaded = _upload(client, b"name,phone\n,13800138000\n")
    no_name = client.post(uploaded.location, data={"map-0": "", "map-1": "phone"})
    assert no_name.status_code == 422 and 'class="error import-problem"' in no_name.text
    twice = client.post(uploaded.location, data={"map-0": "name", "map-1": "name"})
    assert twice.status_code == 422
    bad_batch = client.post(
        uploaded.location, data={"map-0": "name", "map-1": "phone", "mode": "batched", "batch": "0"}
    )
    assert bad_batch.status_code == 422
    started = client.post(uploaded.location, data={"map-0": "name", "map-1": "phone"})
    task_id = int(started.location.rsplit("/", 1)[1])
    state = _wait_for(client, task_id)
    assert state["status"] == "failed" and state["counts"]["failed"] == 1
    tasks.wait(task_id)
    page = client.get(f"/imports/{task_id}")
    assert 'data-status="failed"' in page.text and "Resume" not in page.text


def test_web_upload_refuses_what_it_cannot_read(app, client, company, login_as):
    co = company()
    login_as("admin", co)
    assert _upload(client, b"%PDF-1.4", name="scan.pdf").status_code == 422
    assert _upload(client, b"", name="empty.csv").status_code == 422
    assert _upload(client, b"PK\x03\x04broken", name="book.xlsx").status_code == 422
    assert _upload(client, b"name\nx\n", kind="tickets").status_code == 422
    assert client.post("/imports/", data={"kind": "customers"}).status_code == 422
    app.config["IMPORT_MAX_MB"] = 0.001
    too_big = _upload(client, b"name\n" + b"x" * 5000)
    assert too_big.status_code == 413 and "MB" in too_big.text
    assert client.get("/imports/file/c1-" + "0" * 32 + ".csv?kind=customers").status_code == 404
    assert client.get("/imports/file/../../etc/passwd").status_code == 404
    assert client.get("/imports/999999").status_code == 404
    assert client.get("/imports/999999/errors.csv").status_code == 404


def test_only_admins_and_managers_import(client, company, login_as):
    co = company()
    for role in ("sales_rep", "service_agent", "viewer"):
        login_as(role, co)
        assert client.get("/imports/").status_code == 403
        assert _upload(client, b"name\nx\n").status_code == 403


def test_another_companys_upload_and_import_are_not_found(client, company, login_as):
    a, b = company(), company()
    login_as("admin", a)
    uploaded = _upload(client, "name\n甲\n".encode())
    started = client.post(uploaded.location, data={"map-0": "name"})
    task_id = int(started.location.rsplit("/", 1)[1])
    _wait_for(client, task_id)
    tasks.wait(task_id)
    login_as("admin", b)
    assert client.get(uploaded.location).status_code == 404
    assert client.get(f"/imports/{task_id}").status_code == 404
    assert client.get(f"/imports/{task_id}/status").status_code == 404


def test_a_stopped_batched_web_import_resumes(client, company, login_as, failing_import):
    co = company()
    login_as("admin", co)
    lines = ["code,name"] + [f"R{i:03d},客户{i}" for i in range(30)]
    uploaded = _upload(client, "\n".join(lines).encode())
    failing_import(2, RuntimeError("database went away"))
    started = client.post(
        uploaded.location, data={"map-0": "code", "map-1": "name", "mode": "batched", "batch": "10"}
    )
    task_id = int(started.location.rsplit("/", 1)[1])
    assert _wait_for(client, task_id)["status"] == "failed"
    tasks.wait(task_id)
    page = client.get(f"/imports/{task_id}")
    assert "database went away" in page.text and "/resume" in page.text
    assert client.post(f"/imports/{task_id}/resume").status_code == 302
    assert _wait_for(client, task_id)["status"] == "done"
    tasks.wait(task_id)
    with company_scope(co.id):
        assert [c for (c,) in customers(Customer.code)] == [f"R{i:03d}" for i in range(30)]


def test_the_customer_list_links_to_the_import(client, company, login_as):
    co = company()
    login_as("manager", co)
    assert 'href="/imports/?kind=customers"' in client.get("/customers/").text
    login_as("sales_rep", co)
    assert "/imports/" not in client.get("/customers/").text


def test_import_in_a_browser_shows_progress_then_the_result(
    app, company, make_user, browser, live_url, tmp_path
):
    co = company(name="康泰医药", plugins=["pharma"])
    make_user("manager", co, email="wang@example.com", password="s3cret-pass")
    rows = [["编号", "客户名称", "手机", "床位数"]]
    rows += [[f"B{i:05d}", f"客户{i}", f"137{i:08d}", str(i % 900)] for i in range(3000)]
    rows.append(["B99999", "坏行", "not-a-phone", "1"])
    path = write_csv(tmp_path / "客户.csv", rows)

    page = browser.new_page(locale="zh-CN")
    page.goto(f"{live_url}/login")
    page.fill("input[name=email]", "wang@example.com")
    page.fill("input[name=password]", "s3cret-pass")
    page.click("button[type=submit]")
    page.goto(f"{live_url}/customers/")
    page.click("a[href='/imports/?kind=customers']")
    page.set_input_files("input[type=file]", str(path))
    page.click("main button.primary")
    assert page.locator("select[name=map-3] option[value=pharma__beds]").evaluate("o => o.selected")
    page.screenshot(path=str(tmp_path / "mapping.png"), full_page=True)
    page.check("input[name=mode][value=batched]")
    page.fill("input[name=batch]", "500")
    page.click("main button.primary")
    page.wait_for_selector("#import-result", timeout=30_000)  # the script reloads when done
    assert page.locator("[data-count=created]").inner_text() == "3000"
    assert page.locator("[data-count=failed]").inner_text() == "1"
    assert page.locator(".import-errors td", has_text="not-a-phone").count() == 1
    page.screenshot(path=str(tmp_path / "result.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#error-report")
    assert download.value.suggested_filename.endswith("-errors.csv")
    tasks.wait(int(page.url.rstrip("/").rsplit("/", 1)[1]))


def test_old_uploads_and_reports_are_pruned(app, tmp_path):
    import os

    old, new = importer.folder() / "c1-old.csv", importer.folder() / "c1-new.csv"
    for path in (old, new):
        path.write_text("name\n")
    week_ago = time.time() - 8 * 86400
    os.utime(old, (week_ago, week_ago))
    assert importer.prune(7) >= 1
    assert not old.exists() and new.exists()


def test_large_files_are_proposed_in_batches(client, company, login_as):
    login_as("admin", company())
    small = client.get(_upload(client, b"name\nx\n").location).text
    assert 'value="atomic" checked' in small
    big = b"name\n" + b"x\n" * 20_001
    large = client.get(_upload(client, big).location).text
    assert 'value="batched" checked' in large


def test_bad_numbers_and_dates_name_their_cells(company, make_user, tmp_path):
    co = company(plugins=["marketing"])
    path = write_csv(
        tmp_path / "n.csv",
        [
            ["name", "revenue", "生日"],
            ["甲", "12,000.50", "1990年5月4日"],
            ["乙", "一万", "1990-05-04"],
            ["丙", "100", "1990-13-45"],
            ["丁", "10000000000000", "1850-01-01"],
        ],
    )
    with company_scope(co.id):
        outcome = run(path, user=make_user("admin", co), mode="batched")
        assert outcome["created"] == 1
        assert [(e["line"], e["column"]) for e in outcome["errors"]] == [
            (3, "revenue"),
            (4, "生日"),
            (5, "revenue"),
            (5, "生日"),
        ]
        assert customers(Customer.revenue) == [(Decimal("12000.50"),)]
        stored = handle.text("SELECT birthday FROM marketing_customer_ext")
        assert [str(b) for (b,) in handle.session.execute(stored)] == ["1990-05-04"]


def test_the_list_of_imports_shows_when_each_started_in_the_companys_time(
    client, company, login_as
):
    from zoneinfo import ZoneInfo

    co = company()
    login_as("manager", co)
    with company_scope(co.id):
        task = BackgroundTask(kind="import", target="core.importer:run", params={}, status="done")
        handle.session.add(task)
        handle.session.commit()
        started = task.created_at
    shanghai = started.replace(tzinfo=UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    page = client.get("/imports/").text
    assert shanghai.strftime("%Y-%m-%d %H:%M") in page and " UTC" not in page
