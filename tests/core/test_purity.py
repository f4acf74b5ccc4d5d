"""app/core stays pure: it imports only the standard library and itself (a walk over every import)."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

import app.core

CORE = Path(app.core.__file__).parent
MODULES = sorted(CORE.rglob("*.py"))


def imported_names(path: Path) -> list[tuple[int, str]]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # a relative import stays inside the package
                names.append((node.lineno, "app.core"))
            elif node.module is not None:
                names.append((node.lineno, node.module))
    return names


def allowed(name: str) -> bool:
    top = name.split(".")[0]
    return top in sys.stdlib_module_names or name == "app.core" or name.startswith("app.core.")


def test_core_has_modules() -> None:
    assert {path.stem for path in MODULES} >= {"events", "window", "kpis", "clock", "targets"}


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_core_module_imports_only_stdlib_and_core(path: Path) -> None:
    foreign = [
        f"{path.name}:{line} imports {name}" for line, name in imported_names(path) if not allowed(name)
    ]
    assert foreign == []
    module = "app.core" if path.stem == "__init__" else f"app.core.{path.stem}"
    importlib.import_module(module)


def test_the_check_catches_a_foreign_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import json\nfrom app.db import writer\nfrom . import kpis\nimport pydantic\n")
    assert [name for _, name in imported_names(sample) if not allowed(name)] == ["app.db", "pydantic"]
