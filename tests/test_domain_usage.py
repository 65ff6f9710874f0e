"""Every response and slot the Python code names exists in domain.yml.

The code is read with `ast` (nothing is imported) in bot/, actions/ and rasa_ext/:

* responses: every string literal that is a whole response name (`"utter_..."`), wherever
  it stands (`texts.render(...)`, `dispatcher.utter_message(response=...)`, tables of
  names). Prefixes such as `"utter_ask_"` and names built at run time (f-strings) are not
  names and are left out;
* slots: the first argument of `SlotSet(...)` and `tracker.get_slot(...)`; the keys of a
  `slots=` dict; `x.slots["name"]`, `x.slots.get/setdefault/pop("name")` and
  `x.slots.update(name=..., {...})`; and the `<slot>` of each `validate_<slot>` method of a
  class (a form validation action) with the keys of the dicts it returns. A module-level
  `validate_address(text)` is a plain function, not a slot's validator.

A failure lists each missing name with the places that use it.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
SOURCES = ("bot", "actions", "rasa_ext")
RESPONSE = re.compile(r"utter_[a-z0-9_]*[a-z0-9]")
# Keys of Rasa's own data that look like response names (an event's metadata).
NOT_RESPONSES = {"utter_action"}
# Slots Rasa defines itself.
RASA_SLOTS = {"requested_slot", "session_started_metadata"}
# `validate_<name>` methods of a form validation action that are not slots.
NOT_SLOT_VALIDATORS = {"validate"}

Uses = dict[str, list[str]]


def _python_files() -> Iterator[Path]:
    for folder in SOURCES:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _text(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _dict_keys(node: ast.AST | None) -> list[str]:
    if not isinstance(node, ast.Dict):
        return []
    return [key for key in map(_text, node.keys) if key is not None]


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _on_slots(node: ast.AST) -> bool:
    """Whether `node` is `<something>.slots`."""
    return isinstance(node, ast.Attribute) and node.attr == "slots"


def _slots_in(tree: ast.AST) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _call_name(node)
            if name in ("SlotSet", "get_slot") and node.args:
                slot = _text(node.args[0])
                if slot is not None:
                    yield slot, node.lineno
            for keyword in node.keywords:
                if keyword.arg == "slots":
                    yield from ((k, node.lineno) for k in _dict_keys(keyword.value))
            func = node.func
            if isinstance(func, ast.Attribute) and _on_slots(func.value):
                if func.attr in ("get", "setdefault", "pop") and node.args:
                    slot = _text(node.args[0])
                    if slot is not None:
                        yield slot, node.lineno
                if func.attr == "update":
                    yield from ((k.arg, node.lineno) for k in node.keywords if k.arg)
                    for arg in node.args:
                        yield from ((k, node.lineno) for k in _dict_keys(arg))
        elif isinstance(node, ast.Subscript) and _on_slots(node.value):
            slot = _text(node.slice)
            if slot is not None:
                yield slot, node.lineno
        elif isinstance(node, ast.ClassDef):
            for method in node.body:
                if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                if method.name.startswith("validate_") and method.name not in NOT_SLOT_VALIDATORS:
                    yield method.name.removeprefix("validate_"), method.lineno
                    for inner in ast.walk(method):
                        if isinstance(inner, ast.Return):
                            yield from ((k, inner.lineno) for k in _dict_keys(inner.value))


def _responses_in(tree: ast.AST) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        text = _text(node)
        if text is not None and RESPONSE.fullmatch(text) and text not in NOT_RESPONSES:
            yield text, getattr(node, "lineno", 0)


def _uses() -> tuple[Uses, Uses]:
    responses: Uses = defaultdict(list)
    slots: Uses = defaultdict(list)
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = path.relative_to(ROOT).as_posix()
        for name, line in _responses_in(tree):
            responses[name].append(f"{where}:{line}")
        for name, line in _slots_in(tree):
            slots[name].append(f"{where}:{line}")
    return responses, slots


def _missing(used: Uses, declared: set[str]) -> list[str]:
    return [f"{name} ({', '.join(used[name])})" for name in sorted(set(used) - declared)]


def test_every_response_the_code_names_is_in_the_domain() -> None:
    responses, _slots = _uses()
    assert "utter_order_status_shipped" in responses  # the scan finds texts.render's names
    missing = _missing(responses, set(DOMAIN["responses"]))
    assert missing == [], "responses the code uses that domain.yml lacks:\n" + "\n".join(missing)


def test_every_slot_the_code_names_is_in_the_domain() -> None:
    _responses, slots = _uses()
    assert {"identity_attempts", "survey_dispatch_id"} <= set(slots)  # the scan finds them
    missing = _missing(slots, set(DOMAIN["slots"]) | RASA_SLOTS)
    assert missing == [], "slots the code uses that domain.yml lacks:\n" + "\n".join(missing)


def test_the_scan_finds_each_kind_of_use() -> None:
    """The scanner itself, on a made-up module: each pattern is found, nothing else."""
    source = (
        "SlotSet('a', 1)\n"
        "tracker.get_slot('b')\n"
        "Turn(slots={'c': 1})\n"
        "turn.slots['d'] = 2\n"
        "turn.slots.update(e=1)\n"
        "turn.slots.update({'f': 1})\n"
        "turn.slots.get('g')\n"
        "class V:\n"
        "    def validate_h(self):\n"
        "        return {'i': 1}\n"
        "other['not_a_slot'] = 1\n"
        "def validate_address(text): return {'not_a_slot_either': 1}\n"
        "texts.render('utter_x')\n"
        "PREFIX = 'utter_ask_'\n"
    )
    tree = ast.parse(source)
    assert sorted(name for name, _ in _slots_in(tree)) == list("abcdefghi")
    assert [name for name, _ in _responses_in(tree)] == ["utter_x"]
