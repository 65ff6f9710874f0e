"""No answer word for word twice in a row (issue #17 item 5, bot/domain/repeats.py)."""

from __future__ import annotations

from typing import Any

from rasa_sdk.executor import CollectingDispatcher

from actions.services import emit
from bot.domain.chat import Turn
from bot.domain.repeats import (
    REPEATED_AGAIN,
    REPEATED_ANSWER,
    REPEATED_CONFIRMATION,
    Restatement,
    previous_bot_texts,
    restate,
)
from bot.domain.support import PERSON_BUTTON
from tests.rasa_helpers import domain, tracker

STATUS = "Order A10023 (1× Mug) shipped on 2 December and should arrive by 8 December."
TRACE = {"title": "Trace my parcel", "payload": "/delivery_problem"}


def said(*events: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"event": kind, "text": text} for kind, text in events]


def test_the_previous_bot_texts_are_the_bot_turn_before_the_latest_customer_message() -> None:
    events = said(
        ("user", "hi"),
        ("bot", "Hello"),
        ("user", "where is it"),
        ("bot", STATUS),
        ("bot", "How satisfied are you?"),
        ("user", "where is it??"),
    )
    assert previous_bot_texts(events) == ["How satisfied are you?", STATUS]
    assert previous_bot_texts(said(("user", "hi"))) == []
    # Two customer messages without a bot message between: nothing to compare with.
    assert previous_bot_texts(said(("bot", STATUS), ("user", "a"), ("user", "b"))) == []


def test_a_different_answer_is_said_as_it_is() -> None:
    assert restate(STATUS, [], ["Something else."], confirming=False) is None
    assert restate(STATUS, [], [], confirming=False) is None


def test_the_same_answer_again_offers_a_person() -> None:
    assert restate(
        STATUS, [TRACE], ["How satisfied are you?", STATUS], confirming=False
    ) == Restatement(REPEATED_ANSWER, STATUS, [TRACE, PERSON_BUTTON])
    # Spacing differences are still the same words.
    assert restate(STATUS, [], [STATUS.replace(" ", "  ")], confirming=False) is not None


def test_a_person_already_offered_is_not_offered_twice() -> None:
    again = restate(STATUS, [PERSON_BUTTON], [STATUS], confirming=False)
    assert again is not None and again.buttons == [PERSON_BUTTON]


def test_a_confirmation_asked_again_is_prefaced_not_escalated() -> None:
    question = "Cancel order A10023 (1× Mug, 12.00 EUR)?"
    assert restate(question, [], [question], confirming=True) == Restatement(
        REPEATED_CONFIRMATION, question, []
    )


def test_the_responses_exist_with_their_placeholder() -> None:
    responses = domain()["responses"]
    for name in (REPEATED_ANSWER, REPEATED_AGAIN, REPEATED_CONFIRMATION):
        assert "{answer}" in responses[name][0]["text"]


def test_emit_restates_a_repeat_and_keeps_other_messages() -> None:
    dispatcher = CollectingDispatcher()
    asked_again = tracker(
        "c1",
        text="where is it??",
        events=said(("user", "where is it"), ("bot", STATUS), ("user", "where is it??")),
    )
    emit(dispatcher, Turn().say(STATUS).say("Anything else?"), asked_again)
    assert [(m.get("response"), m.get("answer"), m.get("text")) for m in dispatcher.messages] == [
        (REPEATED_ANSWER, STATUS, None),
        (None, None, "Anything else?"),
    ]
    assert dispatcher.messages[0]["buttons"] == [PERSON_BUTTON]


def test_emit_without_a_repeat_says_the_text() -> None:
    dispatcher = CollectingDispatcher()
    emit(dispatcher, Turn().say(STATUS), tracker("c1", text="where is it"))
    assert [m["text"] for m in dispatcher.messages] == [STATUS]


def test_asked_a_third_time_the_answer_is_restated_again() -> None:
    restated = (
        f"I've checked again and it's still the same: {STATUS} If that doesn't help, a person "
        "from our team can look into it with you."
    )
    again = restate(STATUS, [], [restated], confirming=False)
    assert again == Restatement(REPEATED_AGAIN, STATUS, [PERSON_BUTTON])
