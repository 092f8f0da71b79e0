"""The installed distribution claims one top-level name, ``lernflow`` (docs/architecture.md).

The repository keeps its top-level folders (``config/ flows/ sources/ sinks/ certificates/
reports/``); ``lernflow/<name>`` links to each, so they install as ``lernflow.<name>`` and a
shared environment never sees generic module names such as ``config`` or ``reports``.
"""

from __future__ import annotations

import ast
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOMED = ("config", "flows", "sources", "sinks", "certificates", "reports")


def _python_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / p for p in out]


def test_every_import_of_our_packages_goes_through_lernflow() -> None:
    offenders = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} {n}"
                for n in names
                if n.split(".")[0] in HOMED
            ]
    assert offenders == []


def test_the_wheel_packages_only_lernflow() -> None:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert conf["tool"]["setuptools"]["packages"]["find"]["include"] == ["lernflow*"]


def test_each_top_level_folder_is_linked_into_the_lernflow_package() -> None:
    for name in HOMED:
        link = ROOT / "lernflow" / name
        assert link.is_symlink(), link
        assert link.resolve() == (ROOT / name).resolve()
        assert (ROOT / name / "__init__.py").is_file()
