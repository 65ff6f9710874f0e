"""Understanding survey answers typed as free text ("four", "4/5", "meh, 3", "⭐⭐⭐⭐")."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from bot.domain.words import Words

SCALES: dict[str, tuple[int, int]] = {"csat": (1, 5), "ces": (1, 7), "nps": (0, 10)}

NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}

_STAR_CHARS = "⭐★🌟"
_FRACTION = re.compile(r"(\d{1,3})\s*(?:/|out of|of)\s*(\d{1,3})")
_INTEGER = re.compile(r"(?<![\d.,])\d{1,3}(?![\d.,]\d)")
_WORD = re.compile(r"[a-z]+")


# Words that make a number a rating ("I'd give it 3", "3 stars", "rate it 4 out of 5").
_RATING_WORDS = re.compile(
    r"\b(give|gave|giving|rate|rated|rating|score|scored|stars?|points?|out of|solid)\b|/",
    re.IGNORECASE,
)
_CORRECTION = re.compile(
    r"\b(oops|whoops|typo|i\s*meant|meant to (say|put|type|give)|sorry,? (it'?s|make (it|that))|actually|"
    r"correction|change (it|that|my (answer|score|rating)) to|make (it|that) an?|"
    # "sorry meant 3", "wait no 4" at the comment question (tester 8, tw8_15, tw8_23)
    r"sorry,? meant|wait,? no)\b",
    re.IGNORECASE,
)
_EDGE_NUMBER = re.compile(r"^\W*\d{1,2}\b|\b\d{1,2}\W*$")
# A comment has at least this many words besides numbers.
COMMENT_MIN_WORDS = 4


def is_comment(text: str) -> bool:
    """Free text that is a comment, not a score, even if it holds a number: "your checkout
    kept logging me out, took 3 tries to pay" (issue #18). A number at either end ("4, it
    was fine overall", "meh, 3") or with rating words ("I'd give it 8") makes it a score."""
    words = _WORD.findall(_digits_free(text.lower()))
    if len(words) < COMMENT_MIN_WORDS or _RATING_WORDS.search(text):
        return False
    return not _EDGE_NUMBER.search(_digits_for_words(text))


# Words that come with a score without saying anything about the experience ("I'd give it
# 4 out of 5 stars", "5 thanks"): what is left after them is a remark worth keeping.
_SCORE_FILLER = frozenset(
    {
        "i",
        "id",
        "d",
        "i'd",
        "would",
        "give",
        "gave",
        "it",
        "a",
        "an",
        "stars",
        "star",
        "out",
        "of",
        "points",
        "point",
        "rate",
        "rated",
        "rating",
        "score",
        "solid",
        "maybe",
        "probably",
        "about",
        "around",
        "like",
        "hmm",
        "meh",
        "ok",
        "okay",
        "well",
        "so",
        "um",
        "thanks",
        "thank",
        "you",
        "thx",
        "ty",
        "please",
        "and",
        "but",
        "because",
        "cause",
        "cuz",
        "as",
        "the",
        "just",
        "is",
        "my",
        "answer",
        "s",
    }
)
REMARK_MIN_WORDS = 2


def remark(text: str) -> str | None:
    """The whole answer when it says something besides its score ("3 but the courier was
    rude last time", "4, fast delivery"), to be kept as the survey's comment; None for a
    bare score ("I'd give it 4 out of 5", "5 thanks")."""
    words = [
        word
        for word in re.findall(r"[a-z']+", _digits_free(text.lower()))
        if word not in _SCORE_FILLER and word not in NUMBER_WORDS
    ]
    return text.strip() if len(words) >= REMARK_MIN_WORDS else None


# "why do u need to know", "what's that for?" at a survey question (tester tr23): answered
# with the reason, the question stays open.
_WHY = re.compile(
    r"^\W*(?:but |and |ok |okay |hm+ )?(?:why+|what(?:'?s| is) (?:it|that|this) for|what for|"
    r"how come|who (?:wants|needs) to know)\b(?:\W*$|.{0,30}\b(?:need|want|ask|asking|know|"
    r"matter|care|important)\b)",
    re.IGNORECASE,
)


asks_why = Words(_WHY)


def _digits_free(text: str) -> str:
    return re.sub(r"\d+", " ", text)


# "8 not 3", "oops, 8 not a 3": the first number replaces the second.
_X_NOT_Y = re.compile(r"\b(\d{1,2})\s*,?\s*not\s+(?:an?\s+)?(\d{1,2})\b", re.IGNORECASE)


def correction(text: str, scale: str) -> int | None:
    """The corrected score in "sorry, I meant 4" / "actually make it a 5" / "oops 8 not 3",
    if it is one on the scale."""
    low, high = SCALES[scale]
    x_not_y = _X_NOT_Y.search(_digits_for_words(text or ""))
    if x_not_y:
        value = int(x_not_y.group(1))
        return value if low <= value <= high else None
    if not _CORRECTION.search(text or ""):
        return None
    parsed = parse_score(text, scale)
    return parsed.value if parsed.status is ScoreStatus.ok else None


class ScoreStatus(str, enum.Enum):
    ok = "ok"
    out_of_range = "out_of_range"
    unclear = "unclear"


@dataclass(frozen=True)
class ParsedScore:
    status: ScoreStatus
    value: int | None = None


def _digits_for_words(text: str) -> str:
    return _WORD.sub(lambda m: str(NUMBER_WORDS.get(m.group(0), m.group(0))), text.lower())


# "one" as a pronoun, not a score: "the other one", "that one", "a new one" (tester: "the
# other one" after an order answer was stored as CSAT 1).
_PRONOUN_ONE = re.compile(
    r"\b(?:the|that|this|other|another|which|each|every|any|some|new|same|right|wrong|"
    r"first|second|last|older|newer|big|small|blue|black|red|white)\s+one\b",
    re.IGNORECASE,
)


def _candidates(text: str) -> list[int]:
    text = _digits_for_words(_PRONOUN_ONE.sub(" ", text))
    fraction = _FRACTION.search(text)
    if fraction:
        return [int(fraction.group(1))]
    stars = sum(text.count(ch) for ch in _STAR_CHARS)
    if stars:
        return [stars]
    return [int(match) for match in _INTEGER.findall(text)]


def has_number(text: str) -> bool:
    """Whether the text holds a number that could be a score ("4", "four", "4/5", "★★★")."""
    return bool(_candidates(text or ""))


def parse_score(text: str, scale: str) -> ParsedScore:
    """One number on the survey's scale, or why it could not be understood."""
    low, high = SCALES[scale]
    found = sorted(set(_candidates(text or "")))
    if len(found) != 1:
        return ParsedScore(ScoreStatus.unclear)
    value = found[0]
    if not low <= value <= high:
        return ParsedScore(ScoreStatus.out_of_range, value)
    return ParsedScore(ScoreStatus.ok, value)


# How satisfied, in words, at a 1-5 satisfaction question ("it was ok i guess", "pretty good
# i guess", "terrible"): testers 4 and 5 had such answers kept as a comment and the same
# question asked again, as if unanswered. First match wins, so negations and intensified
# phrases come before the plain word they contain ("not bad" before "bad").
_CSAT_WORDS: tuple[tuple[str, int], ...] = (
    (r"not (?:too |that |so )?bad|no complaints", 4),
    (
        r"not (?:very |that |so |too )?(?:great|good|happy|satisfied|impressed|ideal)|could be better",
        2,
    ),
    (r"not (?:terrible|awful|horrible)", 3),
    (r"(?:very|really|super|extremely|so|absolutely) (?:good|happy|satisfied|pleased|helpful)", 5),
    (r"(?:very|really|super|so|extremely) (?:bad|poor|unhappy|disappointed|disappointing)", 1),
    (
        r"excellent|amazing|awesome|perfect|fantastic|brilliant|superb|outstanding|wonderful|"
        r"great|loved? it|couldn'?t be better|top notch|spot on",
        5,
    ),
    (r"pretty good|quite good|good|happy|satisfied|pleased|nice|decent|helpful|fine", 4),
    (r"ok(?:ay)?|alright|all right|average|so-?so|meh|mixed|neutral|mediocre|could be worse", 3),
    (r"bad|poor|unhappy|disappointed|disappointing|not helpful|unhelpful", 2),
    (
        r"terrible|awful|horrible|useless|worst|rubbish|pathetic|appalling|hopeless|"
        r"waste of time|a joke|garbage|trash",
        1,
    ),
)
_CES_WORDS: tuple[tuple[str, int], ...] = (
    (r"not (?:very |that |so |too )?(?:easy|simple)", 5),
    (r"not (?:very |that |so |too )?(?:hard|difficult)", 3),
    (r"(?:very|really|super|so) (?:easy|simple|quick)|effortless|a breeze", 1),
    (r"(?:very|really|super|so) (?:hard|difficult)|impossible|nightmare|a pain|painful", 7),
    (r"easy|simple|quick|straightforward", 2),
    (r"ok(?:ay)?|alright|average|so-?so|meh", 4),
    (r"hard|difficult|complicated|took (?:forever|ages)", 6),
)
_SCALE_WORDS = {"csat": _CSAT_WORDS, "ces": _CES_WORDS}
# Words said around such an answer that add nothing to it ("it was ok i guess honestly").
_AROUND_WORDS = frozenset(
    [
        "it",
        "its",
        "it's",
        "was",
        "is",
        "were",
        "that",
        "this",
        "i",
        "guess",
        "think",
        "say",
        "would",
        "i'd",
        "id",
        "honestly",
        "tbh",
        "overall",
        "all",
        "in",
        "really",
        "pretty",
        "quite",
        "very",
        "so",
        "just",
        "kinda",
        "kind",
        "of",
        "sort",
        "yeah",
        "yes",
        "yep",
        "well",
        "the",
        "help",
        "service",
        "support",
        "experience",
        "chat",
        "bot",
        "delivery",
        "thanks",
        "thank",
        "you",
        "thx",
        "ty",
        "tho",
        "though",
        "to",
        "be",
        "fair",
        "a",
        "bit",
        "lol",
        "hmm",
        "um",
        "uh",
        "and",
        "but",
        "oh",
        "eh",
        "ah",
        "mostly",
        "generally",
        "everything",
        "been",
        "has",
        "have",
        "far",
        "tbf",
        "answer",
        "answers",
        "reply",
        "response",
        "thing",
        "stuff",
    ]
)
# Alone, these acknowledge the question rather than rate anything ("ok" = "ask away").
_ACKNOWLEDGEMENTS = frozenset({"ok", "okay", "alright", "all right", "k", "kk"})
# A long message is a comment even when it holds such a word; its score is asked again.
_WORDS_ANSWER_MAX = 8


def _plain(text: str) -> str:
    return " ".join(re.findall(r"[a-z'-]+", (text or "").lower().replace("’", "'")))


def score_in_words(text: str, scale: str) -> int | None:
    """The score meant by a short answer in words on the CSAT (1-5) or CES (1-7) scale
    ("pretty good i guess" → 4, "not great" → 2, "really easy" → 1), or None: no such word,
    words that disagree ("good product, terrible delivery"), words beyond the answer itself
    ("it was ok but the parcel came late" is a comment), a number, or a scale without words
    (NPS: how likely to recommend is not said in words reliably)."""
    table = _SCALE_WORDS.get(scale)
    plain = _plain(text)
    if table is None or has_number(text or "") or not plain:
        return None
    if len(plain.split()) > _WORDS_ANSWER_MAX or plain in _ACKNOWLEDGEMENTS:
        return None
    found: set[int] = set()
    rest = f" {plain} "
    for pattern, value in table:
        matcher = re.compile(rf"(?<![a-z']){pattern}(?![a-z'])")
        if matcher.search(rest):
            found.add(value)
            rest = matcher.sub(" ", rest)
    leftover = [word for word in rest.split() if word not in _AROUND_WORDS]
    if len(found) != 1 or leftover:
        return None
    return found.pop()


def score_meant(text: str, scale: str) -> int | None:
    """The score on the scale a whole answer gives, as a number or in words; None otherwise."""
    parsed = parse_score(text, scale)
    return parsed.value if parsed.status is ScoreStatus.ok else score_in_words(text, scale)
