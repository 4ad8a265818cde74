"""The tutorial of docs/plugins.md, followed as written: scaffold, edit, install, test.

Console blocks are checked to be the commands this test performs (``guanxi plugin new``, the
install, ``pytest``); a Python block whose first line is ``# autos/<path>`` is written to that
file, or, when the line says ``(replace these functions)``, its functions replace the ones of the
same name in the file. The plugin's own tests -- the field on the customer form, the workflow's
steps on its page, the report among the reports, all gone where the plugin is disabled -- then
run against the installed package (see tests/test_plugin_kit.py for how it is installed).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from click.testing import CliRunner

from core.cli import main
from tests.test_plugin_kit import install_and_test

ROOT = Path(__file__).resolve().parent.parent


def tutorial_blocks() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = text.split("## Tutorial", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


def replace_functions(source: str, block: str) -> str:
    """``source`` with each top-level function of ``block`` put in place of its namesake."""
    new = {
        node.name: ast.get_source_segment(block, node, padded=False)
        for node in ast.parse(block).body
        if isinstance(node, ast.FunctionDef)
    }
    lines = source.splitlines(keepends=True)
    for node in sorted(ast.parse(source).body, key=lambda n: n.lineno, reverse=True):
        if isinstance(node, ast.FunctionDef) and node.name in new:
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            decorators = "".join(f"@{ast.unparse(d)}\n" for d in node.decorator_list)
            lines[start : node.end_lineno] = [decorators + new.pop(node.name) + "\n"]
    assert not new, f"the tutorial replaces functions the file does not have: {sorted(new)}"
    return "".join(lines)


def test_the_tutorial_works_as_written(tmp_path):
    blocks = tutorial_blocks()
    commands = [
        line[2:] for kind, body in blocks if kind == "console" for line in body.splitlines()
    ]
    assert commands[:3] == [
        "guanxi plugin new autos --dir .",
        "cd autos",
        "pip install -e . && pytest",
    ]
    result = CliRunner().invoke(main, ["plugin", "new", "autos", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    project = tmp_path / "autos"
    own_lines = 0
    for kind, body in blocks:
        if kind != "python":
            continue
        header, _, code = body.partition("\n")
        match = re.match(r"# autos/(\S+)( \(replace these functions\))?$", header)
        assert match, header
        target = project / match.group(1)
        if match.group(2):
            target.write_text(replace_functions(target.read_text(encoding="utf-8"), code))
        else:
            target.write_text(code, encoding="utf-8")
        own_lines += sum(1 for line in code.splitlines() if line.strip())
    assert own_lines < 80
    ast.parse((project / "guanxi_autos" / "__init__.py").read_text(encoding="utf-8"))

    run = install_and_test(project, tmp_path / "site")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "2 passed" in run.stdout
