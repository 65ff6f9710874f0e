"""The lock files: the production image gets the runtime packages only, and they are enough.

requirements/app.txt (runtime, installed by deploy/Dockerfile.app) and dev.txt (the
development tools on top of it; `make setup` installs dev.txt) are built by `make lock`.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

from bot.config import PROJECT_ROOT

REQUIREMENTS = PROJECT_ROOT / "requirements"
# Packages of the product's own processes (the app image copies these directories).
PRODUCT = ("bot", "actions", "migrations")


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalised (PEP 503)."""
    name = re.split(r"[=<>~!\[;@ ]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _entries(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _pinned(lock_file: str) -> set[str]:
    entries = _entries(REQUIREMENTS / lock_file)
    return {_name(entry) for entry in entries if not entry.startswith("-")}


def _top_level_modules(distribution: str) -> set[str]:
    files = importlib.metadata.distribution(distribution).files or []
    modules = set()
    for file in files:
        top = file.parts[0]
        if top.endswith((".dist-info", ".data")) or top in ("..", "__pycache__"):
            continue
        modules.add(top.removesuffix(".py").split(".")[0])
    return modules


def test_the_production_image_installs_the_runtime_lock_file_only() -> None:
    dockerfile = (PROJECT_ROOT / "deploy" / "Dockerfile.app").read_text()
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs == ["RUN pip install --no-cache-dir -r requirements/app.txt"]


def test_no_development_tool_is_pinned_in_the_runtime_lock_file() -> None:
    tools = {_name(entry) for entry in _entries(REQUIREMENTS / "dev.in") if entry[0] != "-"}
    assert {"pytest", "ruff", "mypy", "playwright", "pre-commit"} <= tools
    assert tools & _pinned("app.txt") == set()


def test_the_development_lock_file_adds_to_the_runtime_one() -> None:
    assert _entries(REQUIREMENTS / "dev.txt")[0] == "-r app.txt"
    assert _entries(REQUIREMENTS / "dev.in")[0] == "-r app.in"
    assert _pinned("app.txt") & _pinned("dev.txt") == set()


def test_every_package_the_product_imports_is_in_the_runtime_lock_file() -> None:
    runtime_modules = set().union(*(_top_level_modules(name) for name in _pinned("app.txt")))
    imported: dict[str, str] = {}
    for package in PRODUCT:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    imported.setdefault(name.split(".")[0], str(path.relative_to(PROJECT_ROOT)))
    third_party = {
        module: where
        for module, where in imported.items()
        if module not in sys.stdlib_module_names and module not in PRODUCT
    }
    assert {"aiohttp", "sqlalchemy", "rasa_sdk", "wordllama"} <= set(third_party)
    missing = {
        module: where for module, where in third_party.items() if module not in runtime_modules
    }
    assert missing == {}
