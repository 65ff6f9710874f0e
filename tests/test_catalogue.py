"""Product FAQ answers for research-stage questions."""

from __future__ import annotations

import pytest

from bot.domain import catalogue
from bot.domain.catalogue import FAQ, answer, fallback_answer

ANSWERS = {entry.topic: entry.answer for entry in FAQ}


def test_topics() -> None:
    assert [entry.topic for entry in FAQ] == [
        "sizes",
        "stock",
        "warranty",
        "materials",
        "care",
        "shipping",
        "subscription",
        "gift",
    ]


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("Which size should I take, is there a size chart?", "sizes"),
        ("SIZE CHART PLEASE!!!", "sizes"),
        ("Is the blue one back in stock?", "stock"),
        ("Does it come with a warranty?", "warranty"),
        ("What is it made of? organic cotton?", "materials"),
        ("cast iron", "materials"),
        ("Is it dishwasher safe?", "care"),
        ("Does the pan work on induction?", "care"),
        ("Is the cast iron pan dishwasher safe?", "care"),  # care 3 hits beats materials 2
        ("How much is shipping to the UK?", "shipping"),
        ("Tell me about the coffee subscription", "subscription"),
        ("Do you do gift wrapping?", "gift"),
        # a tie goes to the entry listed first
        ("Is the XL size out of stock?", "sizes"),
    ],
)
def test_answer_picks_the_best_topic(question: str, topic: str) -> None:
    assert answer(question) == (ANSWERS[topic], topic)


@pytest.mark.parametrize("question", ["What is the meaning of life?", "", "   ", "?!", "123 456"])
def test_answer_falls_back_when_nothing_matches(question: str) -> None:
    assert answer(question) == (fallback_answer(), None)


def test_answer_handles_none_and_very_long_text() -> None:
    assert answer(None) == (fallback_answer(), None)  # type: ignore[arg-type]
    assert answer("blah " * 5000 + "warranty") == (ANSWERS["warranty"], "warranty")


def test_fallback_points_to_a_person() -> None:
    assert "ask for a person" in catalogue.fallback_answer()
