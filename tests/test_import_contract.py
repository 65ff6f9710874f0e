"""The layers' import contract (docs/architecture.md, "Layers"), read from the source with
`ast`: nothing is imported, so a violation is found even in a module no test loads.

* bot/domain imports only the domain, bot/storage and bot/config: no web (bot.web,
  aiohttp), no command line (bot.cli), no Rasa (rasa, rasa_sdk, rasa_ext), no actions.
* bot/storage imports only storage and bot/config: never the domain, except the domain's
  value sets (bot/domain/enums.py, which imports nothing of bot/) for its columns.
* bot/web imports no command line (bot.cli) or launcher; of the modules at the root of bot/
  only config, alerts, mail and demo (the demo only in the demo shop, next rule).
* the demo data (bot/demo/) is imported in bot/ only by itself, the command line and the
  demo shop (bot/web/demo_shop.py); the demo shop only by bot/web/app.py, inside the function
  that mounts it when APP_ENV is not production (so the production web app never loads the
  demo: `test_the_production_app_does_not_load_the_demo` checks that at run time).
* nothing in bot/ imports actions/, rasa_ext/, Rasa or the Rasa SDK (those sit on top).
* actions/ and rasa_ext/ import of bot/ only the domain, storage and config.
* no import cycles among the modules of bot/. Imports inside functions count like the
  ones at the top (they are how cycles hide); imports under `if TYPE_CHECKING:` do not
  (they never run) for cycles, but do for the layer rules.

A known exception is listed below with why; the lists may only shrink: an entry that no
longer matches the code fails too, so it is removed when the code is fixed.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (layer, the only bot.* packages it may import, the outside packages it must not import)
LAYERS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "bot.domain",
        ("bot.domain", "bot.storage", "bot.config"),
        ("aiohttp", "rasa", "rasa_sdk", "rasa_ext", "actions"),
    ),
    (
        "bot.domain.enums",
        (),
        ("aiohttp", "rasa", "rasa_sdk", "rasa_ext", "actions", "sqlalchemy"),
    ),
    (
        "bot.storage",
        ("bot.storage", "bot.config", "bot.domain.enums"),
        ("aiohttp", "rasa", "rasa_sdk", "rasa_ext", "actions"),
    ),
    # The web service: never the command line (nor the launcher that starts it).
    (
        "bot.web",
        (
            "bot.web",
            "bot.domain",
            "bot.storage",
            "bot.config",
            "bot.alerts",
            "bot.mail",
            "bot.demo",
        ),
        (),
    ),
    ("bot", ("bot",), ("rasa", "rasa_sdk", "rasa_ext", "actions")),
    # The Rasa side uses the domain (and its models), never the web service or the CLI.
    ("actions", ("bot.domain", "bot.storage", "bot.config"), ()),
    ("rasa_ext", ("bot.domain", "bot.storage", "bot.config"), ()),
)
PACKAGES = ("bot", "actions", "rasa_ext")

# Modules of bot/ only some modules may import: (module, who may import it, whether only
# inside a function). Of the web layer, only the demo shop may import bot.demo.
RESTRICTED: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("bot.demo", ("bot.demo", "bot.cli", "bot.web.demo_shop"), False),
    # Where the app mounts the demo shop, not when APP_ENV=production.
    ("bot.web.demo_shop", ("bot.web.app",), True),
)

# Imports that break a layer rule today: (importing module, imported module). None.
LAYER_EXCEPTIONS: Mapping[tuple[str, str], str] = {}

# Import cycles that exist today, each broken at run time by an import inside a function:
# none (the last, shop_events <-> shop_events_batch, went with the shop_events package).
KNOWN_CYCLES: Mapping[frozenset[str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str  # the module as written, relative imports resolved
    path: Path
    line: int
    type_only: bool  # under `if TYPE_CHECKING:`
    in_function: bool = False  # inside a function (runs when it is called)

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line}"


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of `package` (under `root`) by dotted name; packages by their name."""
    found: dict[str, Path] = {}
    for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                inside.update(id(sub) for sub in ast.walk(statement))
    return inside


def _function_nodes(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            inside.update(id(sub) for sub in ast.walk(node) if sub is not node)
    return inside


def imports_of(module: str, path: Path, known: Mapping[str, Path]) -> list[Import]:
    """All imports of a module, at any depth (functions, try blocks, TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    type_only = _type_checking_nodes(tree)
    in_function = _function_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from bot.domain import texts` imports the module bot.domain.texts.
            names = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                for alias in node.names
            ]
        found += [
            Import(module, name, path, node.lineno, id(node) in type_only, id(node) in in_function)
            for name in names
        ]
    return found


def all_imports(root: Path, package: str) -> list[Import]:
    known = modules(root, package)
    return [i for name, path in known.items() for i in imports_of(name, path, known)]


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layer_violations(imports: Iterable[Import], root: Path) -> list[str]:
    problems = []
    for imp in imports:
        for layer, may_import, forbidden in LAYERS:
            if not _within(imp.importer, [layer]):
                continue
            top = imp.imported.split(".")[0]
            inside = top == "bot" and not _within(imp.imported, may_import)
            if (inside or _within(imp.imported, forbidden)) and (
                (imp.importer, imp.imported) not in LAYER_EXCEPTIONS
            ):
                problems.append(
                    f"{imp.where(root)}: {imp.importer} imports {imp.imported} "
                    f"({layer} may import of bot/ only {', '.join(may_import)}; "
                    f"never {', '.join(forbidden)})"
                )
    return problems


def restricted_imports(imports: Iterable[Import], root: Path) -> list[str]:
    problems = []
    for imp in imports:
        for module, allowed, only_in_function in RESTRICTED:
            if not _within(imp.imported, [module]) or _within(imp.importer, [module]):
                continue
            if not _within(imp.importer, allowed):
                problems.append(
                    f"{imp.where(root)}: {imp.importer} imports {imp.imported} "
                    f"(only {', '.join(allowed)} may)"
                )
            elif only_in_function and not imp.in_function:
                problems.append(
                    f"{imp.where(root)}: {imp.importer} imports {imp.imported} at the top "
                    "(only inside the function that needs it)"
                )
    return problems


def import_graph(
    imports: Iterable[Import], known: Mapping[str, Path]
) -> dict[str, dict[str, Import]]:
    """module -> {module it imports at run time -> the first such import}."""
    graph: dict[str, dict[str, Import]] = {name: {} for name in known}
    for imp in imports:
        target = imp.imported
        while target and target not in known:
            target = target.rpartition(".")[0]
        if imp.type_only or not target or target == imp.importer or "." not in target:
            continue  # type-only, outside bot/, itself, or the bare `bot` package
        graph[imp.importer].setdefault(target, imp)
    return graph


def cycles(graph: Mapping[str, Mapping[str, Import]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(start: str) -> None:
        # Iterative, so a long import chain cannot reach the recursion limit.
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def describe_cycle(
    component: frozenset[str], graph: Mapping[str, Mapping[str, Import]], root: Path
) -> str:
    edges = [
        f"  {imp.where(root)}: {source} imports {target}"
        for source in sorted(component)
        for target, imp in sorted(graph[source].items())
        if target in component
    ]
    return "import cycle among " + ", ".join(sorted(component)) + ":\n" + "\n".join(edges)


def cycle_problems(root: Path, package: str, allowed: Mapping[frozenset[str], str]) -> list[str]:
    known = modules(root, package)
    graph = import_graph(all_imports(root, package), known)
    found = cycles(graph)
    problems = [describe_cycle(c, graph, root) for c in found if c not in allowed]
    problems += [
        f"KNOWN_CYCLES lists {', '.join(sorted(c))}, which is no longer a cycle: remove it"
        for c in allowed
        if c not in found
    ]
    return problems


# ---- the contract ------------------------------------------------------------------------


def test_the_source_is_read() -> None:
    """Guards against a vacuous pass (a wrong root finds no modules, hence no violations)."""
    imports = all_imports(ROOT, "bot")
    assert len(modules(ROOT, "bot")) > 100
    chat = [i.imported for i in imports if i.importer == "bot.web.chat"]
    assert "bot.web.delivery" in chat and "bot.domain.conversations" in chat


def test_layers() -> None:
    imports = [i for package in PACKAGES for i in all_imports(ROOT, package)]
    problems = layer_violations(imports, ROOT)
    assert not problems, "imports across the layers:\n" + "\n".join(problems)
    stale = [
        pair
        for pair in LAYER_EXCEPTIONS
        if not any((i.importer, i.imported) == pair for i in imports)
    ]
    assert not stale, f"LAYER_EXCEPTIONS lists imports that are gone: {stale}"


def test_restricted_modules() -> None:
    imports = [i for package in PACKAGES for i in all_imports(ROOT, package)]
    problems = restricted_imports(imports, ROOT)
    assert not problems, "imports of restricted modules:\n" + "\n".join(problems)
    for module, _, _ in RESTRICTED:  # guards against a rule that matches nothing
        assert any(_within(i.imported, [module]) for i in imports), module


def test_the_production_app_does_not_load_the_demo() -> None:
    """At run time: the web app built with APP_ENV=production has not imported bot/demo/
    nor the demo shop; in development it has (the check is not vacuous)."""
    probe = (
        "import sys\n"
        "from dataclasses import fields, replace\n"
        "from bot.config import Settings\n"
        "from bot.web.app import create_app\n"
        "secrets = {f.name: f.name + '-' + 's' * 40 for f in fields(Settings)\n"
        "           if f.name.endswith(('_secret', '_token'))}\n"
        "create_app(replace(Settings.from_env(), environment=sys.argv[1], **secrets))\n"
        "print(' '.join(sorted(m for m in sys.modules\n"
        "                      if m.startswith(('bot.demo', 'bot.web.demo_shop')))))\n"
    )

    def loaded(environment: str) -> list[str]:
        env = {k: v for k, v in os.environ.items() if k != "APP_ENV"}
        run = subprocess.run(
            [sys.executable, "-c", probe, environment],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return run.stdout.split()

    assert loaded("production") == []
    assert {"bot.demo", "bot.demo.data", "bot.web.demo_shop"} <= set(loaded("development"))


def test_no_import_cycles() -> None:
    problems = cycle_problems(ROOT, "bot", KNOWN_CYCLES)
    assert not problems, "\n".join(problems)


# ---- the checker itself ------------------------------------------------------------------


def _package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path: Path) -> None:
    _package(
        tmp_path,
        {
            "bot/__init__.py": "",
            "bot/web/__init__.py": "",
            "bot/web/chat.py": "def offer():\n    from bot.web import proactive\n",
            "bot/web/proactive.py": "from .chat import offer\n",
            "bot/web/keys.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import bot.web.hub\n"
            ),
            "bot/web/hub.py": "import bot.web.keys\n",
        },
    )
    assert cycle_problems(tmp_path, "bot", {}) == [
        "import cycle among bot.web.chat, bot.web.proactive:\n"
        "  bot/web/chat.py:2: bot.web.chat imports bot.web.proactive\n"
        "  bot/web/proactive.py:1: bot.web.proactive imports bot.web.chat"
    ]
    assert cycle_problems(tmp_path, "bot", {frozenset({"bot.web.hub", "bot.web.keys"}): ""}) == [
        "import cycle among bot.web.chat, bot.web.proactive:\n"
        "  bot/web/chat.py:2: bot.web.chat imports bot.web.proactive\n"
        "  bot/web/proactive.py:1: bot.web.proactive imports bot.web.chat",
        "KNOWN_CYCLES lists bot.web.hub, bot.web.keys, which is no longer a cycle: remove it",
    ]


def test_a_layer_violation_names_the_import(tmp_path: Path) -> None:
    _package(
        tmp_path,
        {
            "bot/__init__.py": "",
            "bot/domain/__init__.py": "",
            "bot/domain/surveys.py": (
                "from bot.storage import models\n"
                "def f():\n    from bot.web.chat import push\n    import rasa_sdk\n"
            ),
            "bot/storage/__init__.py": "",
            "bot/storage/models.py": "from bot.domain.surveys import f\n",
            "bot/web/__init__.py": "",
            "bot/web/chat.py": "from actions import handoff\n",
        },
    )
    assert layer_violations(all_imports(tmp_path, "bot"), tmp_path) == [
        "bot/domain/surveys.py:3: bot.domain.surveys imports bot.web.chat (bot.domain may "
        "import of bot/ only bot.domain, bot.storage, bot.config; never aiohttp, rasa, "
        "rasa_sdk, rasa_ext, actions)",
        "bot/domain/surveys.py:4: bot.domain.surveys imports rasa_sdk (bot.domain may import "
        "of bot/ only bot.domain, bot.storage, bot.config; never aiohttp, rasa, rasa_sdk, "
        "rasa_ext, actions)",
        "bot/domain/surveys.py:4: bot.domain.surveys imports rasa_sdk (bot may import of bot/ "
        "only bot; never rasa, rasa_sdk, rasa_ext, actions)",
        "bot/storage/models.py:1: bot.storage.models imports bot.domain.surveys (bot.storage "
        "may import of bot/ only bot.storage, bot.config, bot.domain.enums; never aiohttp, rasa, "
        "rasa_sdk, rasa_ext, actions)",
        "bot/web/chat.py:1: bot.web.chat imports actions (bot may import of bot/ only bot; "
        "never rasa, rasa_sdk, rasa_ext, actions)",
    ]


def test_a_restricted_import_names_the_importer(tmp_path: Path) -> None:
    _package(
        tmp_path,
        {
            "bot/__init__.py": "",
            "bot/demo/__init__.py": "",
            "bot/demo/data.py": "",
            "bot/web/__init__.py": "",
            "bot/web/app.py": (
                "from bot.web.demo_shop import shop\ndef f():\n    import bot.web.demo_shop\n"
            ),
            "bot/web/demo_shop.py": "from bot.demo.data import PRODUCTS\n",
            "bot/web/console.py": "def f():\n    from bot.demo import data\n",
        },
    )
    assert restricted_imports(all_imports(tmp_path, "bot"), tmp_path) == [
        "bot/web/app.py:1: bot.web.app imports bot.web.demo_shop at the top (only inside the "
        "function that needs it)",
        "bot/web/console.py:2: bot.web.console imports bot.demo.data (only bot.demo, bot.cli, "
        "bot.web.demo_shop may)",
    ]


@pytest.mark.parametrize(
    "module",
    [
        "bot.web.chat",
        "bot.web.proactive",
        "bot.web.insight_notices",
        "bot.web.language",
        "bot.web.hub",
        "bot.web.keys",
        "bot.web.ops",
    ],
)
def test_no_web_imports_inside_functions_of(module: str) -> None:
    """The delivery split (bot/web/delivery.py) and the fan-out set-up in bot/web/ops.py
    removed the function-level imports that hid the chat and hub cycles."""
    known = modules(ROOT, "bot")
    path = known[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bot.web")
    ]
    assert not hidden
