"""Free-text survey answers (SPEC §4/§5): parse_score and is_decline."""

from __future__ import annotations

import pytest

from bot.domain import refusals, scores
from bot.domain.refusals import is_decline
from bot.domain.scores import (
    ParsedScore,
    ScoreStatus,
    correction,
    is_comment,
    parse_score,
)

OK = ScoreStatus.ok
OUT = ScoreStatus.out_of_range
UNCLEAR = ScoreStatus.unclear


@pytest.mark.parametrize(
    ("text", "scale", "expected"),
    [
        ("4", "csat", ParsedScore(OK, 4)),
        ("four", "csat", ParsedScore(OK, 4)),
        ("Four", "csat", ParsedScore(OK, 4)),
        ("4/5", "csat", ParsedScore(OK, 4)),
        ("4 / 5", "csat", ParsedScore(OK, 4)),
        ("4 out of 5", "csat", ParsedScore(OK, 4)),
        ("meh, 3", "csat", ParsedScore(OK, 3)),
        ("⭐⭐⭐⭐", "csat", ParsedScore(OK, 4)),
        ("⭐️⭐️⭐️", "csat", ParsedScore(OK, 3)),  # with emoji variation selectors
        ("★★", "csat", ParsedScore(OK, 2)),
        ("5 stars", "csat", ParsedScore(OK, 5)),
        ("I'd give it 8", "nps", ParsedScore(OK, 8)),
        ("I'd give it 8", "csat", ParsedScore(OUT, 8)),
        ("9/10", "nps", ParsedScore(OK, 9)),
        ("9/10", "csat", ParsedScore(OUT, 9)),
        ("10", "nps", ParsedScore(OK, 10)),
        ("ten", "nps", ParsedScore(OK, 10)),
        ("11", "nps", ParsedScore(OUT, 11)),
        ("11", "csat", ParsedScore(OUT, 11)),
        ("0", "nps", ParsedScore(OK, 0)),
        ("zero", "nps", ParsedScore(OK, 0)),
        ("0", "csat", ParsedScore(OUT, 0)),
        ("0", "ces", ParsedScore(OUT, 0)),
        ("7", "ces", ParsedScore(OK, 7)),
        ("seven", "ces", ParsedScore(OK, 7)),
        ("7", "csat", ParsedScore(OUT, 7)),
        ("8", "ces", ParsedScore(OUT, 8)),
        ("1", "ces", ParsedScore(OK, 1)),
        ("between 3 and 4", "csat", ParsedScore(UNCLEAR)),
        ("3 or 4", "nps", ParsedScore(UNCLEAR)),
        ("3.5", "csat", ParsedScore(UNCLEAR)),
        ("", "csat", ParsedScore(UNCLEAR)),
        ("   ", "nps", ParsedScore(UNCLEAR)),
        ("it was fine I guess", "csat", ParsedScore(UNCLEAR)),
        ("order 10023", "nps", ParsedScore(UNCLEAR)),  # five digits are not a score
    ],
)
def test_parse_score(text: str, scale: str, expected: ParsedScore) -> None:
    assert parse_score(text, scale) == expected


def test_parse_score_same_number_twice_is_still_one_answer() -> None:
    assert parse_score("4, yes 4", "csat") == ParsedScore(OK, 4)
    assert parse_score("four (4)", "csat") == ParsedScore(OK, 4)


@pytest.mark.parametrize("scale", ["csat", "ces", "nps"])
def test_parse_score_very_long_text_is_unclear(scale: str) -> None:
    assert parse_score("x" * 10_000, scale) == ParsedScore(UNCLEAR)
    assert parse_score("4" * 10_000, scale) == ParsedScore(UNCLEAR)
    assert parse_score("blah " * 2_000, scale) == ParsedScore(UNCLEAR)


def test_parse_score_long_text_with_one_number_is_understood() -> None:
    text = "lorem ipsum " * 800 + "I'd say 4"
    assert len(text) > 9_000
    assert parse_score(text, "csat") == ParsedScore(OK, 4)


def test_parse_score_none_text_is_unclear() -> None:
    assert parse_score(None, "csat") == ParsedScore(UNCLEAR)  # type: ignore[arg-type]


def test_parse_score_unknown_scale_raises() -> None:
    with pytest.raises(KeyError):
        parse_score("4", "stars")


@pytest.mark.parametrize(
    ("text", "scale", "value"), [("four out of five", "csat", 4), ("nine out of ten", "nps", 9)]
)
def test_parse_score_number_word_fraction(text: str, scale: str, value: int) -> None:
    assert parse_score(text, scale) == ParsedScore(OK, value)


@pytest.mark.parametrize(
    ("text", "declined"),
    [
        ("skip", True),
        ("Skip", True),
        ("skip this.", True),
        ("no thanks", True),
        ("no thank you", True),
        ("No thank you!", True),
        ("not now", True),
        ("nope", True),
        ("rather not", True),
        ("  later  ", True),
        ("no, it was great", False),
        ("no problems at all, 5", False),
        ("skip the small talk, my parcel is missing", False),
        ("4", False),
        ("", False),
        # a sentence that declines (tester 4, tw4_24: asked for a number again)
        ("no i dont want to rate anything", True),
        ("i don't want to answer questions", True),
        ("i dont want to return it", False),
        ("i dont want to rate the driver badly but he was late", False),
    ],
)
def test_is_decline(text: str, declined: bool) -> None:
    assert is_decline(text) is declined


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("your website checkout kept logging me out, took 3 tries to pay", True),
        ("the parcel came late and the box was wet", True),
        ("it was a 4 i guess", True),  # the number inside a sentence: asked again
        ("meh, 3", False),
        ("I'd give it 8", False),
        ("4, it was fine overall", False),
        ("it was fine overall, four", False),
        ("four", False),
        ("great service thanks", False),  # short: NLU's complain/praise decides (actions)
    ],
)
def test_a_comment_is_told_from_a_score(text: str, expected: bool) -> None:
    """Issue #18: a complaint with a number in it was stored as that score."""
    assert is_comment(text) is expected


@pytest.mark.parametrize(
    ("text", "scale", "expected"),
    [
        ("sorry, I meant 4", "csat", 4),
        ("actually 5", "csat", 5),
        ("typo, 5", "csat", 5),
        ("oops 8 not 3", "nps", 8),
        ("eight not three", "nps", 8),
        ("oops 8 not 3", "csat", None),  # 8 is not on the CSAT scale
        ("4", "csat", None),  # a plain answer is no correction
        ("the box was 2 days late not 3 weeks", "nps", None),
        ("wait no 4", "csat", 4),  # tester 8, tw8_15
        ("sorry meant 3", "csat", 3),  # tester 8, tw8_23
    ],
)
def test_corrections(text: str, scale: str, expected: int | None) -> None:
    assert correction(text, scale) == expected


@pytest.mark.parametrize("text", ["the other one", "that one pls", "a new one", "the blue one"])
def test_one_as_a_pronoun_is_no_score(text: str) -> None:
    """Tester: "the other one" (the other order) was stored as CSAT 1."""
    assert parse_score(text, "csat").status is ScoreStatus.unclear


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("why do u need to know", True),
        ("why?", True),
        ("what's that for", True),
        ("why does it matter", True),
        ("why is my parcel late", False),
        ("why not, 5", False),
        ("4", False),
    ],
)
def test_asks_why(text: str, why: bool) -> None:
    assert scores.asks_why(text) is why


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("3 but the courier was rude last time", True),
        ("4, fast delivery", True),
        ("I'd give it 4 out of 5 stars", False),
        ("5 thanks", False),
        ("meh, 3", False),
        ("4", False),
    ],
)
def test_a_remark_with_a_score_is_kept(text: str, kept: bool) -> None:
    assert (scores.remark(text) is not None) is kept


@pytest.mark.parametrize(
    ("text", "nothing"),
    [
        ("thats it", True),
        ("no that's all, thanks", True),
        ("nothing else", True),
        ("k", True),  # tester 8, tw8_09
        ("idk", True),  # tester 8, tw8_10: stored as the churn reason
        ("ok the box was wet", False),
        ("it was late", False),
        ("the lid is cracked", False),
    ],
)
def test_nothing_to_add(text: str, nothing: bool) -> None:
    assert refusals.is_no_comment(text) is nothing


@pytest.mark.parametrize(
    ("text", "scale", "expected"),
    [
        ("it was ok i guess", "csat", 3),
        ("pretty good i guess", "csat", 4),
        ("meh", "csat", 3),
        ("not bad", "csat", 4),
        ("not great tbh", "csat", 2),
        ("terrible", "csat", 1),
        ("very helpful thank you", "csat", 5),
        ("really easy", "ces", 1),
        ("took forever", "ces", 6),
        ("eh its fine i guess", "csat", 4),
        ("ok", "csat", None),  # alone: "ask away", not a rating
        ("good product, terrible delivery", "csat", None),  # words that disagree
        ("it was ok but the parcel came late", "csat", None),  # more than a rating
        ("great", "nps", None),  # likelihood to recommend is not read from words
        ("4", "csat", None),  # numbers are parse_score's
        ("the other one", "csat", None),
        ("it is a bit slow", "csat", None),  # about speed: a comment (tw4_24)
    ],
)
def test_score_in_words(text: str, scale: str, expected: int | None) -> None:
    assert scores.score_in_words(text, scale) == expected
