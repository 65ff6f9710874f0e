"""Sentiment (VADER compound) and theme tagging of feedback text (SPEC §7)."""

from __future__ import annotations

import re
from functools import lru_cache

from vaderSentiment import vaderSentiment as vader
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

# Documented keyword taxonomy (docs/decisions.md, "Themes"). A keyword matches as a whole word or
# with a common English ending ("deliver" → delivered, delivery), never as any prefix:
# "ups" must not tag "upset", nor "app" tag "appalling".
THEME_KEYWORDS: dict[str, tuple[str, ...]] = {
    "delivery": (
        "deliver",
        "shipping",
        "shipped",
        "courier",
        "parcel",
        "package",
        "tracking",
        "arriv",
        "late",
        "dispatch",
        "postman",
        "dpd",
        "dhl",
        "ups",
        "gls",
    ),
    "product_quality": (
        "broke",
        "broken",
        "damag",
        "faulty",
        "defect",
        "quality",
        "cheap",
        "flimsy",
        "scratch",
        "torn",
        "stain",
        "wrong size",
        "fit",
        "material",
    ),
    "price": (
        "price",
        "expensive",
        "overpriced",
        "cost",
        "value for money",
        "discount",
        "cheaper",
        "pricey",
    ),
    "support": (
        "support",
        "agent",
        "staff",
        "service",
        "helpful",
        "rude",
        "response",
        "wait",
        "on hold",
        "answer",
    ),
    "website": (
        "website",
        "site",
        "app",
        "checkout",
        "login",
        "page",
        "search",
        "bug",
        "crash",
        "slow to load",
    ),
    "billing": ("charge", "billing", "invoice", "payment", "card", "paid", "double", "receipt"),
    "returns": ("return", "refund", "exchange", "money back", "label"),
    "subscription": (
        "subscription",
        "subscribe",
        "plan",
        "renewal",
        "renew",
        "membership",
        "monthly",
    ),
}
_ENDINGS = r"(?:s|es|ed|d|ing|e|er|ers|y|ies|ive|ly|n|al)?"

_THEME_PATTERNS = {
    theme: re.compile(
        r"\b(?:" + "|".join(re.escape(k) for k in keywords) + r")" + _ENDINGS + r"\b",
        re.IGNORECASE,
    )
    for theme, keywords in THEME_KEYWORDS.items()
}

NEGATIVE = -0.05  # VADER's own cut-off for a negative text
STRONGLY_NEGATIVE = -0.5


# Shop words VADER's general lexicon reads wrongly in feedback (docs/decisions.md,
# "Sentiment"): "super slow" is an intensified complaint, not praise (2.9 for "super");
# "slow", "took forever" complain; "this is a joke" is scorn, not humour.
# Faults of goods that VADER's general lexicon knows nothing of (tester 8, tw8_20: "beans
# arrived stale twice" scored 0.0, so an NPS 0 with that reason was no complaint).
SHOP_LEXICON = {
    "slow": -1.5,
    "forever": -1.0,
    "joke": -1.5,
    "stale": -1.5,
    "mouldy": -2.0,
    "moldy": -2.0,
    "rancid": -2.0,
    "faulty": -1.5,
    "defective": -1.5,
    "leaking": -1.2,
    "leaked": -1.2,
    "dented": -1.0,
    "scratched": -1.0,
    "cracked": -1.2,
    "smashed": -1.5,
    "missing": -1.0,
    "overpriced": -1.5,
}
SHOP_BOOSTERS = ("super",)
# VADER drops punctuation, so a negation reached across a clause: in "the jumper STILL
# hasnt shipped, ridiculous" the "hasnt" flipped "ridiculous" to praise (+0.28). Three
# neutral tokens at each clause boundary put the next clause out of its 3-word reach.
_CLAUSE_END = re.compile(r"(?<=\w)\s*[,;:!?.]+(?=\s|$)")
_CLAUSE_GAP = " , zzclause zzclause zzclause "


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    analyzer = SentimentIntensityAnalyzer()
    for word in SHOP_BOOSTERS:
        analyzer.lexicon.pop(word, None)
        vader.BOOSTER_DICT[word] = vader.B_INCR
    analyzer.lexicon.update(SHOP_LEXICON)
    return analyzer


def sentiment(text: str | None) -> float | None:
    """VADER compound score in [-1, 1], each clause out of the reach of the last one's
    negations; None when there is no text."""
    if not text or not text.strip():
        return None
    marked = _CLAUSE_END.sub(lambda m: m.group(0).strip() + _CLAUSE_GAP, text.strip())
    return round(float(_analyzer().polarity_scores(marked)["compound"]), 4)


def themes(text: str | None) -> list[str]:
    if not text:
        return []
    return [theme for theme, pattern in _THEME_PATTERNS.items() if pattern.search(text)]


def analyse(texts: list[str | None]) -> list[tuple[float | None, list[str]]]:
    """Sentiment and themes of many texts at once, in order (a worker process's task for
    bulk imports: bot.domain.web_reviews)."""
    return [(sentiment(t), themes(t)) for t in texts]
