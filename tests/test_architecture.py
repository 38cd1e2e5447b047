"""The layer rule: imports point inward only, and Qt, SQL, HTTP and keyring live in their own layers."""

from __future__ import annotations

import ast
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "crm_desktop"

# Which crm_desktop layers each layer may import (itself included).
ALLOWED_LAYERS: dict[str, set[str]] = {
    "domain": {"domain"},
    "store": {"domain", "store"},
    "vault": {"domain", "vault"},
    "providers": {"domain", "providers"},
    "sandbox": {"domain", "sandbox"},
    "sync": {"domain", "store", "vault", "providers", "sync"},
    "app": {"domain", "store", "vault", "providers", "sync", "sandbox", "app"},
    "api": {"domain", "app", "api"},
    "ui": {"domain", "app", "api", "ui"},
}
# Top-level modules anyone may import (no dependencies of their own beyond the standard library).
SHARED_LEAVES = {"crm_desktop", "crm_desktop.resources_path", "crm_desktop.listening", "crm_desktop.first_come_slots"}
# Entry points may import any layer (the GUI entry is the only place outside ui/ that reaches Qt).
ENTRY_POINTS = {"crm_desktop.cli", "crm_desktop.__main__"}


def is_entry_point(module: str) -> bool:
    """The command-line package (each command group a module of it) and ``python -m crm_desktop``."""
    return module in ENTRY_POINTS or module.startswith("crm_desktop.cli.")

# Third-party packages confined to layers.
CONFINED: dict[str, set[str]] = {
    "PySide6": {"ui"},
    "qasync": {"ui"},
    "sqlalchemy": {"store"},
    "alembic": {"store"},
    "psycopg": {"store"},
    "httpx": {"providers", "sandbox"},
    "httpcore": set(),
    "httptools": set(),
    "orjson": {"providers", "sandbox"},
    "respx": set(),
    "keyring": {"vault"},
    "starlette": {"sandbox", "api"},
    "uvicorn": {"sandbox", "api"},
    "fastapi": {"api"},
}


@dataclass(frozen=True)
class Violation:
    """One import that breaks the rule."""

    module: str
    line: int
    imported: str
    reason: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}: {self.reason}"


def module_name(path: Path, package_root: Path) -> str:
    relative = path.relative_to(package_root.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in ALLOWED_LAYERS:
        return parts[1]
    return None


def imports_of(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from crm_desktop import ui` imports a layer too.
            if target == "crm_desktop":
                found.extend(
                    (node.lineno, f"crm_desktop.{alias.name}")
                    for alias in node.names
                    if alias.name in ALLOWED_LAYERS or alias.name in {"cli", "__main__"}
                )
    return found


def check_package(package_root: Path) -> list[Violation]:
    """Every import in the package that breaks the layer rule."""
    violations: list[Violation] = []
    for path in sorted(package_root.rglob("*.py")):
        module = module_name(path, package_root)
        layer = layer_of(module)
        for line, imported in imports_of(path, module):
            top = imported.split(".")[0]
            if top == "crm_desktop":
                if is_entry_point(module) or imported in SHARED_LEAVES:
                    continue
                target_layer = layer_of(imported)
                if target_layer is None:
                    if layer is not None and imported not in SHARED_LEAVES:
                        violations.append(Violation(module, line, imported, "layers may not import entry points"))
                    continue
                if layer is not None and target_layer not in ALLOWED_LAYERS[layer]:
                    violations.append(
                        Violation(module, line, imported, f"{layer}/ may not import {target_layer}/ (points outward)")
                    )
            elif top in CONFINED:
                if is_entry_point(module) and top in {"PySide6", "qasync"}:
                    continue
                if layer not in CONFINED[top]:
                    where = ", ".join(sorted(CONFINED[top])) or "tests only"
                    violations.append(Violation(module, line, imported, f"{top} belongs in {where}"))
    return violations


def test_the_package_follows_the_layer_rule() -> None:
    violations = check_package(PACKAGE)
    assert not violations, "layer rule broken:\n" + "\n".join(map(str, violations))


def test_every_layer_exists() -> None:
    for layer in ALLOWED_LAYERS:
        assert (PACKAGE / layer / "__init__.py").is_file(), f"missing layer package {layer}/"


@pytest.mark.parametrize(
    ("relative", "source", "expected"),
    [
        ("store/bad.py", "from crm_desktop.ui.main_window import MainWindow\n", "store/ may not import ui/"),
        ("store/bad.py", "from ..ui import main_window\n", "store/ may not import ui/"),
        ("domain/bad.py", "import crm_desktop.store.models\n", "domain/ may not import store/"),
        ("providers/bad.py", "from crm_desktop.sync import engine\n", "providers/ may not import sync/"),
        ("ui/bad.py", "from crm_desktop.store.database import Database\n", "ui/ may not import store/"),
        ("store/bad.py", "from PySide6.QtCore import QObject\n", "PySide6 belongs in ui"),
        ("app/bad.py", "import sqlalchemy\n", "sqlalchemy belongs in store"),
        ("ui/bad.py", "def f():\n    import httpx\n", "httpx belongs in providers, sandbox"),
        ("sync/bad.py", "import keyring\n", "keyring belongs in vault"),
        ("app/bad.py", "from fastapi import FastAPI\n", "fastapi belongs in api"),
        ("api/bad.py", "from crm_desktop.store.database import Database\n", "api/ may not import store/"),
        ("store/bad.py", "from crm_desktop import cli\n", "layers may not import entry points"),
    ],
)
def test_a_violation_is_caught(tmp_path: Path, relative: str, source: str, expected: str) -> None:
    copy = tmp_path / "crm_desktop"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / relative).write_text(source, encoding="utf-8")
    violations = check_package(copy)
    assert any(expected in v.reason and v.module.endswith(".bad") for v in violations), violations


def test_every_module_has_a_docstring() -> None:
    missing = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) is None
    ]
    assert not missing, f"modules without a one-line docstring: {missing}"
