"""domain.yml agrees with the code and the training data, in both directions."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any

import yaml
from rasa_sdk import Action

import actions

ROOT = Path(__file__).resolve().parent.parent
SPEC_INTENTS = {
    "greet",
    "goodbye",
    "thank",
    "affirm",
    "deny",
    "bot_challenge",
    "request_human",
    "order_status",
    "delivery_problem",
    "damaged_item",
    "return_item",
    "refund_status",
    "cancel_order",
    "change_address",
    "billing_issue",
    "cancel_subscription",
    "pause_subscription",
    "product_question",
    "give_feedback",
    "complain",
    "praise",
    "out_of_scope",
}
BUILT_IN_INTENTS = {"nlu_fallback"}


def _yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


DOMAIN = _yaml(ROOT / "domain.yml")


def _code_actions() -> set[str]:
    names: set[str] = set()
    for module_info in pkgutil.iter_modules(actions.__path__):
        module = importlib.import_module(f"actions.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Action) and cls.__module__ == module.__name__:
                action: Action = cls()
                names.add(action.name())
    return names


def _dialogue_steps() -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    files = [*(ROOT / "data").rglob("*.yml"), *(ROOT / "tests").glob("test_*.yml")]
    for path in files:
        content = _yaml(path)
        for block in content.get("rules", []) + content.get("stories", []):
            for step in block.get("steps", []) + block.get("condition", []):
                steps.extend(step.get("or", [step]))
    return steps


def test_every_action_in_code_is_in_the_domain_and_back() -> None:
    assert _code_actions() == set(DOMAIN["actions"])


def test_every_action_used_in_dialogue_data_is_declared() -> None:
    used = {s["action"] for s in _dialogue_steps() if "action" in s}
    declared = set(DOMAIN["actions"]) | set(DOMAIN["responses"]) | set(DOMAIN["forms"])
    assert used - declared - {"action_listen", "action_deactivate_loop"} == set()


def _responses_named_in_code() -> set[str]:
    """Responses a custom action utters by name (e.g. the fallback's, bot/domain/fallback.py):
    every quoted `utter_…` literal in bot/, actions/ and rasa_ext/ (the channel's)."""
    import re

    named: set[str] = set()
    for folder in ("bot", "actions", "rasa_ext"):
        for path in (ROOT / folder).rglob("*.py"):
            named |= set(re.findall(r"[\"'](utter_[a-z0-9_]+)[\"']", path.read_text()))
    return named


def test_every_response_and_form_is_used() -> None:
    used = {s["action"] for s in _dialogue_steps() if "action" in s}
    ask_responses = {
        f"utter_ask_{slot}" for form in DOMAIN["forms"].values() for slot in form["required_slots"]
    }
    unused = set(DOMAIN["responses"]) - ask_responses - used - _responses_named_in_code()
    assert unused == set()
    assert set(DOMAIN["forms"]) - used == set()


def test_form_questions_exist_for_every_required_slot() -> None:
    askers = set(DOMAIN["responses"]) | set(DOMAIN["actions"])
    for form in DOMAIN["forms"].values():
        for slot in form["required_slots"]:
            assert {f"utter_ask_{slot}", f"action_ask_{slot}"} & askers, slot


def test_intents_match_the_spec_and_the_training_data() -> None:
    trained = set()
    for path in (ROOT / "data" / "nlu").glob("*.yml"):
        trained |= {item["intent"] for item in _yaml(path)["nlu"] if "intent" in item}
    assert set(DOMAIN["intents"]) >= SPEC_INTENTS
    external = {i for i in DOMAIN["intents"] if i.startswith("EXTERNAL_")}
    assert trained == set(DOMAIN["intents"]) - external
    used = {s["intent"] for s in _dialogue_steps() if "intent" in s}
    assert used - set(DOMAIN["intents"]) - BUILT_IN_INTENTS == set()
    assert set(DOMAIN["intents"]) - used == set()


def test_validation_actions_exist_for_every_form() -> None:
    assert {f"validate_{form}" for form in DOMAIN["forms"]} <= _code_actions()


def test_survey_questions_vary_with_the_survey_kind() -> None:
    variations = DOMAIN["responses"]["utter_ask_survey_score"]
    by_kind = {(v.get("condition") or [{"value": "csat"}])[0]["value"]: v for v in variations}
    assert {kind: len(v["buttons"]) for kind, v in by_kind.items()} == {
        "ces": 8,
        "nps": 12,
        "csat": 6,
        "delivery": 6,  # proactive: delivery CSAT
        "first_order": 6,  # proactive: purchase-experience CSAT after "how did you hear"
    }
    assert "1 = very unhappy, 5 = very happy" in by_kind["csat"]["text"]
    assert "1 = very easy, 7 = very hard" in by_kind["ces"]["text"]
    assert "0 = not at all, 10 = extremely" in by_kind["nps"]["text"]
    assert all(v["buttons"][-1] == {"title": "Skip", "payload": "skip"} for v in variations)


class _NoDuplicateKeys(yaml.SafeLoader):
    """A loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = sorted({str(k) for k in keys if keys.count(k) > 1})
        assert not repeated, f"keys given twice at line {node.start_mark.line + 1}: {repeated}"
        return super().construct_mapping(node, deep=deep)


def test_no_key_is_given_twice_in_the_domain() -> None:
    """A response added a second time under the same name silently replaced the first
    (utter_offer_human_what_now, 2026-12-07); Rasa's validation read it differently."""
    yaml.load((ROOT / "domain.yml").read_text(), Loader=_NoDuplicateKeys)
