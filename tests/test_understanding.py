"""Reading customers' words without the NLU (bot/domain/understanding.py)."""

from __future__ import annotations

import pytest

from bot.domain import understanding


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("my coffee box had the wrong beans again, can i speak to someone", True),
        ("get me a human", True),
        ("i want to talk to a real person", True),
        ("can i talk to you about my order", False),
        ("i spoke to the courier", False),
    ],
)
def test_asks_for_a_person(text: str, asks: bool) -> None:
    assert understanding.asks_for_a_person(text) is asks


@pytest.mark.parametrize(
    ("text", "sold"),
    [
        ("do u sell replacement shades for the lamp", True),
        ("do you have any mugs in blue", True),
        ("do you have the tracking number", False),
        ("can you replace the lamp shade", False),
        ("i want to return the lamp", False),
    ],
)
def test_asks_if_sold(text: str, sold: bool) -> None:
    assert understanding.asks_if_sold(text) is sold


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("why was A48437 cancelled?? i didnt cancel it", True),
        ("who cancelled my order", True),
        ("i never cancelled it", True),
        ("cancel my order", False),
        ("why can't i cancel my order", False),
    ],
)
def test_asks_why_cancelled(text: str, why: bool) -> None:
    assert understanding.asks_why_cancelled(text) is why


def test_a_remark_on_the_person_at_a_survey_question_is_the_answer() -> None:
    """After an agent resolved the chat, "the person was nice but slow" at the CES question
    was read as request_human (0.86) and queued the chat again. A remark about the person
    who helped answers the question; an ask for a person still interrupts."""
    person = [
        {"name": "request_human", "confidence": 0.86},
        {"name": "damaged_item", "confidence": 0.03},
    ]

    def answer(text: str) -> bool:
        return understanding.survey_answer_despite_intent(text, person, 0.8, 0.15, False)

    assert answer("can i talk to the person again") is False
    assert answer("the person was nice but slow") is True
    assert answer("the agent was helpful") is True


def test_how_a_delivery_went_at_a_survey_question_is_the_answer() -> None:
    """A regression after a retrain: "the driver left it in the rain and the box was soaked
    through" read as a clear delivery_problem (0.87) at the delivery score question opened a
    parcel trace instead of being kept as the comment."""
    delivery = [
        {"name": "delivery_problem", "confidence": 0.87},
        {"name": "damaged_item", "confidence": 0.12},
    ]

    def answer(text: str) -> bool:
        return understanding.survey_answer_despite_intent(text, delivery, 0.8, 0.15, False)

    assert answer("the driver left it in the rain and the box was soaked through") is True
    assert answer("it never arrived, where is it") is False
    assert answer("still not here") is False
