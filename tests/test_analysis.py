"""Sentiment (VADER compound) and keyword themes (SPEC §7)."""

from __future__ import annotations

import pytest

from bot.domain.analysis import NEGATIVE, STRONGLY_NEGATIVE, THEME_KEYWORDS, sentiment, themes


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t"])
def test_sentiment_is_none_without_text(text: str | None) -> None:
    assert sentiment(text) is None


def test_sentiment_of_an_angry_complaint_is_strongly_negative() -> None:
    score = sentiment(
        "This is the worst service ever. I am furious and disgusted, the parcel arrived broken!"
    )
    assert score is not None
    assert score <= STRONGLY_NEGATIVE == -0.5
    assert score <= -0.9


def test_sentiment_of_praise_is_positive() -> None:
    score = sentiment("Absolutely love it, great quality and super fast delivery. Thank you!")
    assert score is not None
    assert score >= 0.9


def test_sentiment_is_rounded_and_within_bounds() -> None:
    for text in ["ok", "terrible terrible terrible!!!", "amazing amazing amazing!!!"]:
        score = sentiment(text)
        assert score is not None
        assert -1.0 <= score <= 1.0
        assert round(score, 4) == score


def test_sentiment_of_a_neutral_statement_is_zero() -> None:
    assert sentiment("The parcel came on Tuesday.") == 0.0


def test_taxonomy_is_the_documented_one() -> None:
    assert list(THEME_KEYWORDS) == [
        "delivery",
        "product_quality",
        "price",
        "support",
        "website",
        "billing",
        "returns",
        "subscription",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, []),
        ("", []),
        ("ok", []),
        ("Thanks, all good.", []),
        ("The parcel arrived broken", ["delivery", "product_quality"]),
        ("Delivery was late and the courier was rude", ["delivery", "support"]),
        ("The checkout page crashed and I was charged twice", ["website", "billing"]),
        ("It was too expensive for such flimsy material", ["product_quality", "price"]),
        ("I want to return it and get a refund", ["returns"]),
        ("My monthly subscription box renewal was double charged", ["billing", "subscription"]),
        ("DHL lost my package", ["delivery"]),
        ("WRONG SIZE, please send a return LABEL", ["product_quality", "returns"]),
        (
            "Shipping was slow, the mug was damaged, support never answered, "
            "the price is a rip-off, the website is buggy, my card was charged twice, "
            "I want my money back and I'm cancelling my subscription",
            [
                "delivery",
                "product_quality",
                "price",
                "support",
                "website",
                "billing",
                "returns",
                "subscription",
            ],
        ),
    ],
)
def test_themes(text: str | None, expected: list[str]) -> None:
    assert themes(text) == expected


def test_themes_match_word_prefixes_only() -> None:
    # "undelivered" does not start with "deliver"; "delivering" does.
    assert themes("undelivered") == []
    assert themes("they keep delivering to the wrong door") == ["delivery"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I am really upset", []),
        ("I really appreciate the helpful staff", ["support"]),
        ("The quality is appalling", ["product_quality"]),
    ],
)
def test_themes_no_false_positives_from_short_prefixes(text: str, expected: list[str]) -> None:
    assert themes(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # Tester 5's complaints that scored positive (+0.2755, +0.5994).
        "this is the third time im asking, the jumper STILL hasnt shipped, ridiculous",
        "your website is super slow on my phone",
        # The same faults: a negation across a comma, "super" as praise, shop words.
        "still waiting for my refund, this is a joke",
        "it still hasnt come, terrible",
        "the app is super slow",
        "delivery took forever and nobody answered my email",
        "the person was nice but slow",
    ],
)
def test_sentiment_of_a_clear_complaint_is_negative(text: str) -> None:
    score = sentiment(text)
    assert score is not None and score <= NEGATIVE


@pytest.mark.parametrize(
    "text", ["super helpful, thanks!", "not bad, really", "super fast delivery, love it"]
)
def test_super_and_clauses_keep_praise_positive(text: str) -> None:
    score = sentiment(text)
    assert score is not None and score >= 0.4


@pytest.mark.parametrize(
    "text", ["beans arrived stale twice", "the lid came cracked", "overpriced for what it is"]
)
def test_faults_of_goods_are_negative(text: str) -> None:
    """Tester 8 (tw8_20): "beans arrived stale twice" scored 0.0, so an NPS 0 with it as the
    reason was no complaint (no person offered, no escalation)."""
    score = sentiment(text)
    assert score is not None and score <= NEGATIVE
