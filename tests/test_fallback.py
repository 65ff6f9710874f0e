"""The fallback's choices (bot/domain/fallback.py): payloads NLU understands, the streak."""

from __future__ import annotations

import re

import yaml

from bot.config import PROJECT_ROOT
from bot.domain import fallback
from tests.rasa_helpers import domain

_ANNOTATION = re.compile(r"\[([^\]]+)\]\([^)]+\)")


def _training_examples() -> dict[str, set[str]]:
    examples: dict[str, set[str]] = {}
    for path in sorted((PROJECT_ROOT / "data" / "nlu").glob("*.yml")):
        for block in yaml.safe_load(path.read_text()).get("nlu", []):
            if "intent" not in block:
                continue
            lines = [line[2:].strip() for line in block["examples"].splitlines() if line.strip()]
            examples.setdefault(block["intent"], set()).update(
                _ANNOTATION.sub(r"\1", line).lower() for line in lines
            )
    return examples


def test_every_button_payload_is_a_training_example_of_its_intent() -> None:
    """A click is understood like typed text (no `/intent` payloads, issue #16/#17)."""
    examples = _training_examples()
    for intent, (_title, payload) in fallback.CHOICES.items():
        assert payload in examples[intent], (intent, payload)
    assert fallback.SOMETHING_ELSE["payload"] in examples["deny"]


def test_the_replies_are_domain_responses() -> None:
    responses = domain()["responses"]
    for name in (
        fallback.UTTER_CHOICES,
        fallback.UTTER_REPHRASE,
        fallback.UTTER_OFFER_PERSON,
        fallback.UTTER_SYMBOLS,
        fallback.UTTER_UPSET,
    ):
        assert name in responses
    assert set(fallback.CHOICES) <= set(domain()["intents"])


def test_streak_counts_only_the_fallbacks_right_before_the_latest_message() -> None:
    def user(intent: str) -> dict[str, object]:
        return {"event": "user", "parse_data": {"intent": {"name": intent}}}

    def action(name: str) -> dict[str, object]:
        return {"event": "action", "name": name}

    fallback_turn = [
        user("nlu_fallback"),
        action("action_handle_fallback"),
        action("action_listen"),
    ]
    greet_turn = [user("greet"), action("utter_greet"), action("action_listen")]

    assert fallback.streak([user("nlu_fallback")]) == 0
    assert fallback.streak([*fallback_turn, user("nlu_fallback")]) == 1
    assert fallback.streak([*fallback_turn, *greet_turn, user("nlu_fallback")]) == 0
    assert fallback.streak([*fallback_turn, *fallback_turn, user("deny")]) == 2


def test_likeliest_skips_what_cannot_be_offered_and_noise() -> None:
    ranking = [
        {"name": "nlu_fallback", "confidence": 0.45},
        {"name": "greet", "confidence": 0.3},
        {"name": "cancel_order", "confidence": 0.2},
        {"name": "cancel_subscription", "confidence": 0.1},
        {"name": "change_address", "confidence": 0.04},
    ]
    assert fallback.likeliest(ranking) == ["cancel_order", "cancel_subscription"]


def test_one_guess_is_topped_up_with_the_usual_requests() -> None:
    answer = fallback.reply(
        "blorp cancel", "nlu_fallback", [{"name": "cancel_order", "confidence": 0.4}], 0
    )
    assert [b["payload"] for b in answer.buttons] == [
        "i want to cancel my order",
        "where is my order",
        "i want to return an item",
        "none of these",
    ]


def test_words_in_any_script_are_words() -> None:
    assert fallback.has_words("où est ma commande")
    assert fallback.has_words("注文")
    assert fallback.has_words("10023")
    assert not fallback.has_words("?! ... 👍🏽 ❤️")


SYMBOLS_CHECK = """
from rasa.shared.nlu.training_data.message import Message
from rasa_ext.symbols import SymbolsOnlyFallback

texts = ["?", "👍🙂", "!!! ...", "where is my order", "10023"]
messages = [Message(data={"text": t, "intent": {"name": "affirm", "confidence": 0.9}}) for t in texts]
SymbolsOnlyFallback().process(messages)
print([(m.get("intent")["name"], m.get("intent")["confidence"]) for m in messages])
"""


def test_rasa_reads_a_message_without_words_as_not_understood() -> None:
    import os
    import subprocess

    done = subprocess.run(
        [str(PROJECT_ROOT / ".venv-rasa" / "bin" / "python"), "-c", SYMBOLS_CHECK],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(
        [("nlu_fallback", 1.0)] * 3 + [("affirm", 0.9)] * 2
    )


def test_an_unsure_question_is_tried_on_the_knowledge_base_whatever_its_ranking() -> None:
    """sf47: "does the merino jumper shrink" (nlu_fallback 0.45, product_question 0.33) and
    tester 3's "where do i enter a discount code?" (nlu_fallback 0.45, change_address 0.35)
    are questions the knowledge base may answer; a remark is not, nor is a message the NLU
    understood."""
    assert fallback.may_be_a_knowledge_question("does the merino jumper shrink", "nlu_fallback")
    assert fallback.may_be_a_knowledge_question("where do i enter a discount code?", "nlu_fallback")
    assert not fallback.may_be_a_knowledge_question("merino jumper shrink", "nlu_fallback")
    assert not fallback.may_be_a_knowledge_question(
        "does the merino jumper shrink", "product_question"
    )


def test_an_angry_face_on_its_own_is_answered_with_sorry_first() -> None:
    """Tester: "😡" got the cheerful "I'm here to help!" prompt."""
    reply = fallback.reply("😡", "nlu_fallback", [], 0)
    assert reply.response == fallback.UTTER_UPSET
    assert reply.buttons[0]["title"] == "Where is my order?"
    assert fallback.reply("🙂", "nlu_fallback", [], 0).response == fallback.UTTER_SYMBOLS
