"""The plugin author kit: ``guanxi plugin new`` writes a package whose tests pass once installed.

The package is installed into a folder of its own (``pip install --target``), never into the
project's environment, so its entry point cannot leak into other tests; its tests then run in a
subprocess with that folder on ``PYTHONPATH`` (Guanxi finds the plugin through the installed
entry point, pytest finds the plugin's fixtures through its ``pytest11`` entry point).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from core.cli import main

ROOT = Path(__file__).resolve().parent.parent


def install_and_test(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``pip install`` ``project`` into ``site`` and run its tests; returns pytest's run."""
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    if importlib.util.find_spec("wheel") is not None:  # build offline with what is installed
        pip.append("--no-build-isolation")
    subprocess.run([*pip, str(project)], check=True, capture_output=True, text=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    env.pop("GUANXI_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_plugin_new_writes_a_package_whose_tests_pass_once_installed(tmp_path):
    result = CliRunner().invoke(main, ["plugin", "new", "wine", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    project = tmp_path / "wine"
    assert "pip install -e ." in result.output
    for path in (
        "pyproject.toml",
        "guanxi_wine/__init__.py",
        "guanxi_wine/migrations/versions/wine_0001_initial.py",
        "guanxi_wine/translations/zh/LC_MESSAGES/messages.mo",
        "guanxi_wine/templates/wine/index.html",
        "tests/test_wine.py",
    ):
        assert (project / path).is_file(), path
    pyproject = (project / "pyproject.toml").read_text(encoding="utf-8")
    assert '[project.entry-points."guanxi.plugins"]\nwine = "guanxi_wine"' in pyproject
    assert "[project.entry-points.pytest11]" in pyproject
    own_code = (project / "guanxi_wine").rglob("*.py")
    imports = [
        line
        for path in own_code
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith(("from core", "import core"))
    ]
    assert imports and all(line.startswith("from core.extend import") for line in imports)

    run = install_and_test(project, tmp_path / "site")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "2 passed" in run.stdout


def test_plugin_new_refuses_a_bad_name_and_an_existing_folder(tmp_path):
    bad = CliRunner().invoke(main, ["plugin", "new", "Wine-Shop", "--dir", str(tmp_path)])
    assert bad.exit_code != 0 and "lowercase letters" in bad.output
    (tmp_path / "wine").mkdir()
    taken = CliRunner().invoke(main, ["plugin", "new", "wine", "--dir", str(tmp_path)])
    assert taken.exit_code != 0 and "exists already" in taken.output
