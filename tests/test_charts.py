"""Server-side SVG charts: valid XML, escaped labels, drill-down links, empty and negative data."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from core import charts
from core.charts import Series

NS = "{http://www.w3.org/2000/svg}"
KINDS = ["消费客户", "商用客户", "中间客户"]


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(str(svg))
    assert root.tag == f"{NS}svg"
    return root


def every_chart(labels, values, links=None) -> dict[str, str]:
    two = [Series("打开", values, links), Series("完成", [abs(v or 0) for v in values])]
    return {
        "bar": charts.bar(labels, values, links=links, title="柱形"),
        "hbar": charts.bar(labels, two, horizontal=True, title="横向"),
        "stacked": charts.stacked_bar(labels, two, title="堆叠"),
        "hstacked": charts.stacked_bar(labels, two, horizontal=True, title="横向堆叠"),
        "line": charts.line(labels, two, title="折线"),
        "pie": charts.pie(labels, values, links=links, title="饼图"),
        "donut": charts.pie(labels, values, links=links, donut=True, title="环形"),
        "funnel": charts.funnel(labels, values, links=links, title="漏斗"),
    }


def test_every_chart_is_valid_svg_with_a_name_for_screen_readers():
    for kind, svg in every_chart(KINDS, [12, 5, 3]).items():
        root = parse(svg)
        assert root.get("role") == "img", kind
        assert root.get("aria-label"), kind
        assert root.find(f"{NS}title") is not None, kind
        assert "WenQuanYi Micro Hei" in root.get("font-family"), kind
        assert "Noto Sans CJK SC" in root.get("font-family"), kind


def test_chinese_labels_are_written_as_text():
    root = parse(charts.bar(KINDS, [12, 5, 3], title="客户类型"))
    texts = ["".join(t.itertext()) for t in root.iter(f"{NS}text")]
    assert {"消费客户", "商用客户", "中间客户"} <= set(texts)


def test_each_mark_has_a_hover_title():
    root = parse(charts.bar(KINDS, [12, 5, 3]))
    marks = [e for e in root.iter() if e.get("class") == "mark"]
    assert len(marks) == 3
    titles = ["".join(m.find(f"{NS}title").itertext()) for m in marks]
    assert titles == ["消费客户: 12", "商用客户: 5", "中间客户: 3"]


def test_labels_are_escaped_and_bad_characters_dropped():
    evil = '<script>alert("x")</script> & Co\x00\x07'
    for kind, svg in every_chart([evil, "ok"], [3, 4]).items():
        assert "<script>" not in svg, kind
        root = parse(svg)  # \x00 and \x07 would make the XML invalid
        text = " ".join("".join(e.itertext()) for e in root.iter())
        assert '<script>alert("x")</script> & Co' in text, kind
    title = charts.bar(["a"], [1], title='"><svg onload=alert(1)>')
    assert 'aria-label="&#34;&gt;&lt;svg onload=alert(1)&gt;"' in title
    parse(title)


def test_marks_with_a_link_are_wrapped_in_it():
    links = ["/customers/?kind=consumer&channel_id=2", None, "javascript:alert(1)"]
    for kind in ("bar", "pie", "donut", "funnel"):
        root = parse(every_chart(KINDS, [12, 5, 3], links)[kind])
        anchors = [a for a in root.iter(f"{NS}a") if a.get("class") == "drill"]
        assert [a.get("href") for a in anchors] == ["/customers/?kind=consumer&channel_id=2"], kind
        assert anchors[0].find(f"{NS}*[@class='mark']") is not None, kind
    assert "javascript" not in charts.bar(KINDS, [1, 2, 3], links=links)


def test_links_on_stacked_segments_and_line_points():
    series = [Series("开", [1, 2], ["/tickets/?state=new", "/tickets/?state=new&type=x"])]
    for svg in (charts.stacked_bar(["a", "b"], series), charts.line(["a", "b"], series)):
        hrefs = [a.get("href") for a in parse(svg).iter(f"{NS}a")]
        assert hrefs == ["/tickets/?state=new", "/tickets/?state=new&type=x"]


def test_empty_data_draws_a_friendly_empty_chart():
    for svg in (
        charts.bar([], [], title="空"),
        charts.line(["a"], [Series("x", [None])]),
        charts.stacked_bar([], []),
        charts.pie(["a", "b"], [0, 0]),
        charts.funnel(["a"], [0]),
        charts.draw("bar", [], [], empty_text="暂无数据"),
    ):
        root = parse(svg)
        assert "chart-empty" in root.get("class")
    assert "暂无数据" in charts.draw("bar", [], [], empty_text="暂无数据")


def test_zero_and_negative_values():
    root = parse(charts.bar(["涨", "跌", "平"], [5, -3, 0]))
    ticks = [
        float("".join(t.itertext()).replace(",", ""))
        for t in root.iter(f"{NS}text")
        if t.get("class") == "tick"
    ]
    assert min(ticks) <= -3 and max(ticks) >= 5 and 0 in ticks
    bars = {
        m.find(f"{NS}title").text: m for m in root.iter(f"{NS}rect") if m.get("class") == "mark"
    }
    up, down = bars["涨: 5"], bars["跌: -3"]
    assert float(down.get("y")) >= float(up.get("y")) + float(up.get("height")) - 0.2  # below 0
    assert float(bars["平: 0"].get("height")) == 0
    parse(charts.bar(["a"], [0]))  # all zero: an axis 0..1, no division by zero
    stacked = parse(charts.stacked_bar(["m"], [Series("up", [2]), Series("down", [-4])]))
    assert len([r for r in stacked.iter(f"{NS}rect") if r.get("class") == "mark"]) == 2
    pie = parse(charts.pie(["a", "b", "c"], [3, -1, 0]))
    assert len([p for p in pie.iter() if p.get("class") == "mark"]) == 1  # one positive slice


def test_nice_ticks_are_round_numbers():
    assert charts.nice_ticks(0, 37) == [0, 10, 20, 30, 40]
    assert charts.nice_ticks(-3, 12) == [-5, 0, 5, 10, 15]
    assert charts.nice_ticks(0, 0, integer=True) == [0, 1]
    assert charts.nice_ticks(0, 3, integer=True) == [0, 1, 2, 3]
    assert charts.nice_ticks(0, 0.37) == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])


def test_several_series_get_a_legend():
    root = parse(charts.bar(KINDS, [Series("新增", [1, 2, 3]), Series("流失", [0, 1, 0])]))
    legend = ["".join(g.itertext()) for g in root.iter(f"{NS}g") if g.get("class") == "legend-item"]
    assert legend == ["新增", "流失"]


def test_a_line_breaks_where_a_value_is_missing():
    root = parse(charts.line(["1月", "2月", "3月", "4月"], [Series("x", [1, 2, None, 4])]))
    assert len(list(root.iter(f"{NS}polyline"))) == 1  # 1月-2月; 4月 stands alone
    assert len(list(root.iter(f"{NS}circle"))) == 3


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown chart kind"):
        charts.draw("radar", ["a"], [Series("x", [1])])
