"""The plugin author's documentation keeps up with the code."""

from __future__ import annotations

import ast
from pathlib import Path

import core.plugins.hookspecs as hookspecs

ROOT = Path(__file__).resolve().parent.parent


def hookspec_signatures() -> dict[str, str]:
    """``name -> "name(args) -> returns"`` for every hookspec, written as in the source."""
    tree = ast.parse(Path(hookspecs.__file__).read_text(encoding="utf-8"))
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("guanxi_"):
            returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
            out[node.name] = f"{node.name}({ast.unparse(node.args)}){returns}"
    return out


def test_every_hookspec_is_documented_with_its_exact_signature():
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    signatures = hookspec_signatures()
    assert len(signatures) >= 10
    missing = [sig for sig in signatures.values() if sig not in text]
    assert not missing, "docs/plugins.md lacks these hook signatures:\n" + "\n".join(missing)


def test_docs_name_no_hook_that_does_not_exist():
    import re

    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"(?<![.\w])(guanxi_[a-z_]+)\(", text))
    assert documented <= set(hookspec_signatures())
