"""The bot's fixed texts are domain.yml responses (bot/domain/texts.py), and stay there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from bot.domain import texts

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))


@pytest.fixture
def domain_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "domain.yml"
    path.write_text(
        "responses:\n"
        "  utter_order_shipped:\n"
        '    - text: "Order {order} ({items}) shipped on {shipped}.{tracking}"\n'
        "  utter_two:\n"
        '    - text: "First."\n'
        '    - text: "Second."\n'
        "  utter_braces:\n"
        '    - text: "Literal {{braces}} stay."\n'
        "  utter_buttons_only:\n"
        '    - buttons: [{title: "Yes", payload: "yes"}]\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(texts, "DOMAIN_FILE", path)
    return path


def test_render_fills_the_placeholders(domain_file: Path) -> None:
    text = texts.render(
        "utter_order_shipped",
        order="A10001",
        items="1× Mug",
        shipped="3 December 2026",
        tracking="",
        unused="ignored",
    )
    assert text == "Order A10001 (1× Mug) shipped on 3 December 2026."
    assert texts.render("utter_two") == "First."  # the first variation
    assert texts.render("utter_braces") == "Literal {braces} stay."


def test_values_are_formatted_like_rasa_slots(domain_file: Path) -> None:
    assert texts.fill("{n} days, {price}, {none}", {"n": 3, "price": 4.5, "none": None}) == (
        "3 days, 4.5, None"
    )
    # A value is never read as a template.
    assert texts.fill("to: {address}?", {"address": "Flat {2} 0[a] Road"}) == (
        "to: Flat {2} 0[a] Road?"
    )


def test_unknown_response_or_missing_value_is_an_error(domain_file: Path) -> None:
    with pytest.raises(texts.TextError, match="no response 'utter_nope'"):
        texts.render("utter_nope")
    with pytest.raises(texts.TextError, match="no response 'utter_buttons_only'"):
        texts.render("utter_buttons_only")
    with pytest.raises(texts.TextError, match=r"'utter_order_shipped' needs a value for \{items\}"):
        texts.render("utter_order_shipped", order="A10001", shipped="today", tracking="")


def test_buttons_are_the_first_variations(domain_file: Path) -> None:
    assert texts.buttons("utter_buttons_only") == [{"title": "Yes", "payload": "yes"}]
    assert texts.buttons("utter_two") == []
    with pytest.raises(texts.TextError, match="no response 'utter_nope'"):
        texts.buttons("utter_nope")


def test_the_real_domain_is_read_once_and_renders() -> None:
    texts.load.cache_clear()
    assert texts.render("utter_nothing_changed") == "Okay, I haven't changed anything."
    texts.render("utter_okay")
    assert texts.load.cache_info().misses == 1


def _python_files() -> list[Path]:
    return [*(ROOT / "bot").rglob("*.py"), *(ROOT / "actions").rglob("*.py")]


def test_every_rendered_response_is_in_the_domain() -> None:
    rendered: set[str] = set()
    for path in _python_files():
        rendered |= set(re.findall(r"render\(\s*[\"'](utter_[a-z0-9_]+)[\"']", path.read_text()))
        rendered |= set(re.findall(r"response=[\"'](utter_[a-z0-9_]+)[\"']", path.read_text()))
    assert "utter_order_status_shipped" in rendered
    with_text = {
        name
        for name, variations in DOMAIN["responses"].items()
        if any("text" in v for v in variations)
    }
    assert rendered - with_text == set()


def _has_letters(node: ast.expr) -> list[str]:
    """The string literals with letters in an expression (an f-string's fixed parts too),
    leaving out the names of responses handed to `render`."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "render"
        ):
            for value in [*node.args[1:], *(k.value for k in node.keywords)]:
                visit(value)
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.search(r"[^\W\d_]", node.value):
                found.append(node.value)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(node)
    return found


# Calls whose first argument (or `text=` / `reply=`) is what the bot says.
_SAYERS = {"say", "FlowResult", "_confirm", "utter_message"}
# Texts that are allowed to stay literal: none.
ALLOWED: set[str] = set()


def test_no_literal_bot_text_in_the_domain_layer() -> None:
    offenders: list[str] = []
    for path in [*(ROOT / "bot" / "domain").rglob("*.py"), *(ROOT / "actions").rglob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # A module constant said by name counts as said (e.g. `turn.say(REPLY)`).
        constants = {
            target.id: statement.value
            for statement in tree.body
            if isinstance(statement, ast.Assign)
            for target in statement.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            said: list[ast.expr] = []
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                if name in _SAYERS:
                    said += node.args[:1]
                    said += [k.value for k in node.keywords if k.arg in {"text", "reply"}]
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if node.value is not None and any(
                    isinstance(t, ast.Name) and t.id == "reply" for t in targets
                ):
                    said.append(node.value)
            said = [constants.get(e.id, e) if isinstance(e, ast.Name) else e for e in said]
            for expr in said:
                for literal in _has_letters(expr):
                    if literal not in ALLOWED:
                        offenders.append(f"{path.relative_to(ROOT)}:{expr.lineno}: {literal!r}")
    assert offenders == []


def test_the_app_image_holds_the_domain_file() -> None:
    """The action server and web service images read domain.yml next to bot/ (/app)."""
    dockerfile = (ROOT / "deploy" / "Dockerfile.app").read_text(encoding="utf-8")
    assert "COPY domain.yml domain.yml" in dockerfile.splitlines()
    assert "COPY bot bot" in dockerfile.splitlines()
    assert texts.DOMAIN_FILE == ROOT / "domain.yml"
