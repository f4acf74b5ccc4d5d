"""Readers use the window's public methods only: no module outside app/core reaches into its parts.

An ast walk over app/ (app/core excepted): no import of the window's internal modules, and no attribute
of a window (any expression named `window`, `services.window`, `self.window`, ...) that is private or
one of its internal containers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import app

APP = Path(app.__file__).parent
CORE = APP / "core"
MODULES = sorted(path for path in APP.rglob("*.py") if CORE not in path.parents)
# The window's parts: only the facade (app/core/window.py) and the read model are for readers.
INTERNAL_MODULES = {"app.core.series", "app.core.contacts"}
INTERNAL_ATTRIBUTES = {"series", "contacts", "by_key"}


def _is_window(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return "window" in node.id.lower()
    if isinstance(node, ast.Attribute):
        return "window" in node.attr.lower()
    return False


def violations(source: str, name: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.ImportFrom) and node.module in INTERNAL_MODULES:
            found.append(f"{name}:{node.lineno} imports {node.module}")
        elif isinstance(node, ast.Import):
            found += [
                f"{name}:{node.lineno} imports {alias.name}"
                for alias in node.names
                if alias.name in INTERNAL_MODULES
            ]
        elif isinstance(node, ast.Attribute) and _is_window(node.value):
            private = node.attr.startswith("_") and not node.attr.startswith("__")
            if private or node.attr in INTERNAL_ATTRIBUTES:
                found.append(f"{name}:{node.lineno} reads {ast.unparse(node)}")
    return found


def test_there_are_readers_to_check() -> None:
    assert {path.name for path in MODULES} >= {"metrics.py", "screens.py", "kpis.py", "queues.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(APP)))
def test_no_reader_touches_the_windows_internals(path: Path) -> None:
    assert violations(path.read_text(), str(path.relative_to(APP))) == []


def test_the_check_catches_a_reader_digging_in() -> None:
    sample = (
        "from app.core.series import Series\n"
        "import app.core.contacts\n"
        "keys = list(window.series)\n"
        "n = len(services.window._contacts.by_key)\n"
        "ok = services.window.queues_seen()\n"
        "other = registry.series\n"
    )
    assert violations(sample, "sample.py") == [
        "sample.py:1 imports app.core.series",
        "sample.py:2 imports app.core.contacts",
        "sample.py:3 reads window.series",
        "sample.py:4 reads services.window._contacts",
    ]
