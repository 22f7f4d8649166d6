"""No import runs up the layers: every package imports only what docs/ARCHITECTURE.md allows.

The allowed imports are read from the table under "Import rule" in docs/ARCHITECTURE.md, so
the picture and the rule cannot drift apart. Every ``import``/``from ... import`` of every
module is checked with :mod:`ast`, including imports inside functions and under
``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
_ROW = re.compile(r"^\|\s*`(\w+)`\s*\|\s*(.*?)\s*\|\s*$")


def allowed_imports() -> dict[str, set[str]]:
    """``package -> packages it may import`` from the "Import rule" table."""
    text = ARCHITECTURE.read_text()
    section = text.split("### Import rule", 1)[1].split("\n#", 1)[0]
    table: dict[str, set[str]] = {}
    for line in section.splitlines():
        m = _ROW.match(line)
        if m:
            table[m.group(1)] = set(re.findall(r"`(\w+)`", m.group(2)))
    return table


ALLOWED = allowed_imports()
PACKAGES = sorted(ALLOWED)


def imported_packages(path: Path, own: str) -> list[tuple[int, str]]:
    """``(line, top-level package)`` of every absolute import in ``path`` of a project
    package (one of :data:`PACKAGES` or ``tests``) other than ``own``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:  # relative imports stay inside their own package
            continue
        for name in names:
            top = name.split(".")[0]
            if top != own and (top in ALLOWED or top == "tests"):
                found.append((node.lineno, top))
    return found


def test_the_table_names_every_package() -> None:
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert set(PACKAGES) == on_disk, "docs/ARCHITECTURE.md's import rule must list every package"
    assert ALLOWED["core"] == set()


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_runs_up_the_layers(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {top}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, top in imported_packages(path, package)
        if top not in ALLOWED[package]
    ]
    assert wrong == [], f"{package} may import only {sorted(ALLOWED[package])}: {wrong}"


def test_the_checker_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from api.app import create_app\n"
        "def f():\n    import deploy.cli\n    from .x import y\n"
    )
    assert imported_packages(module, "storage") == [(3, "api"), (5, "deploy")]
