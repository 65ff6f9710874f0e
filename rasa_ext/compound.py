"""Two requests in one message (issue #17 item 5): "where's my refund and can i change the
address", "ok thx. and do u do gift wrapping".

The NLU gives one intent per message, so the second request of such a message used to be
lost, and a thank-you in front of a question got "You're welcome!" instead of the answer.
The channel (rasa_ext/channels.py) asks `plan()` what to send to the bot before the turn:

* no split point (a sentence end, "and", "also", "plus", "&", "btw"), or a part of fewer
  than two words: the message as typed;
* each part is parsed; unless both parts are read with at least `CONFIDENCE` (the dialogue's
  confidence rule, INTENT_CONFIDENCE_THRESHOLD) and as different intents, the message as typed;
* a pleasantry (greeting, thanks, goodbye) next to a request: only the request; so is
  "praise" of three words or fewer next to another request (sarcasm: "great. just great");
* two requests: both, one after the other, as two turns; a request that can end in an
  account-change confirmation goes last so that the other answer does not drop its pending
  "yes" (SPEC §5: anything but a clear yes changes nothing). Two such requests: only the
  first, and the bot says it will come to the second next (`utter_compound_next`).
* a second part asking about its own thing (a question that names something the first part
  does not and leans on none of its words) is served when read with at least
  `DEFER_CONFIDENCE`: two status questions ("where is my casserole order and when is my next
  coffee box", both order_status) both, in order; a status or knowledge question next to an
  account change first. "the casserole one" in it is read as the first part's thing ("the
  casserole order").

Parts answering a question (affirm, deny, inform), fallbacks and out-of-scope text are never
split off: "yes and also 2 mugs" stays one answer; but a "no" in front of a request is
dropped for it ("nah forget it, is the shirt linen?": the question). Pure functions; no Rasa import, so the app
venv's tests check them directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.domain.intents import JUST_LETTING_KNOW, STATE_CHANGES, SUPPORT_REQUESTS

CONFIDENCE = 0.80
DEFER_CONFIDENCE = 0.50
MIN_WORDS = 2
SARCASM_WORDS = 3

PLEASANTRIES = frozenset({"greet", "thank", "goodbye"})
REQUESTS = frozenset(
    {
        *SUPPORT_REQUESTS,
        "product_question",
        "policy_question",
        "request_human",
        "give_feedback",
        "complain",
        "praise",
    }
)
# Ways of saying one return: what is wrong, that it goes back, the money wanted back.
ONE_RETURN = frozenset({"return_item", "damaged_item", "request_refund"})

_SPLIT = re.compile(
    r"(?:[.?!;]+\s+|\s*[.?!;]*\s+(?:and\s+also|and|also|plus|&|btw|oh\s+and)\s+|,\s*(?:and\s+|also\s+)?)",
    re.IGNORECASE,
)
_LEADING_JOINER = re.compile(r"^(?:and\s+also|and|also|plus|&|btw|oh\s+and)\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Reading:
    intent: str | None
    confidence: float


@dataclass(frozen=True)
class Plan:
    """What the bot gets: `texts` as turns in this order; `deferred`, a request it was not
    given now (the bot says it will come to it next)."""

    texts: tuple[str, ...]
    deferred: str | None = None


MAX_CUTS = 2  # each cut costs two NLU parses
# Metadata of every part but the last: another request of the same message comes next, so
# no survey is started after this one's answer (tester tr15; actions/services.more_follows).
MORE_FOLLOWS = "compound_more_follows"


# While a survey question is open the whole message goes to the survey form, which decides
# whether it is the answer or a request that the survey gives way to (issue #18). Cut in two,
# "the lid was cracked and nobody answered my email" at the comment question kept only its
# second half, and "ok and can i change where it goes? im not home thursday" at a score
# question had its remark stored as the comment before the request (a request that can end
# in a confirmation goes last).
SURVEY_SLOTS = frozenset({"survey_source", "survey_score", "survey_ces", "survey_comment"})


def keeps_whole(requested_slot: str | None) -> bool:
    """Whether a message sent while the bot asks for `requested_slot` goes to it uncut."""
    return requested_slot in SURVEY_SLOTS


# A remark for the shop, nothing asked: one message, never cut (bot/domain/intents.py).
_REMARK = re.compile(JUST_LETTING_KNOW, re.IGNORECASE)


# "cancel the jumper order. also wheres the casserole one": "one" stands for the thing the
# first part named; alone, "wheres the casserole one" was not understood (nlu_fallback 0.45,
# tester 6, tw6_06), "wheres the casserole order" is an order-status question.
_THE_ONE = re.compile(r"\b(the|my|that)\s+([a-z]+)\s+one\b", re.IGNORECASE)
_HEAD_NOUN = re.compile(r"\b(order|parcel|package|subscription|box)s?\b", re.IGNORECASE)


def _spelled_out(first: str, second: str) -> str:
    """`second` with "the <word> one" said as "the <word> <what the first part named>"."""
    heads = _HEAD_NOUN.findall(first)
    if not heads:
        return second
    head = heads[-1].lower()
    return _THE_ONE.sub(lambda match: f"{match[1]} {match[2]} {head}", second)


def candidate_splits(text: str) -> list[tuple[str, str]]:
    """The first MAX_CUTS ways of cutting `text` in two at a split point, both parts with
    at least MIN_WORDS words; none for a remark that only lets the shop know. A "the
    casserole one" in the second part names the first part's thing ("… order")."""
    if _REMARK.search(text):
        return []
    splits: list[tuple[str, str]] = []
    for match in _SPLIT.finditer(text):
        first = text[: match.start()].strip(" ,")
        second = _LEADING_JOINER.sub("", text[match.end() :].strip(" ,"))
        if len(first.split()) >= MIN_WORDS and len(second.split()) >= MIN_WORDS:
            splits.append((first, _spelled_out(first, second)))
    return splits[:MAX_CUTS]


def _clear(reading: Reading) -> bool:
    return reading.intent is not None and reading.confidence >= CONFIDENCE


# Two questions for the knowledge base in one message ("how much is shipping to austria and
# how long does it take", tester 3 tw3_03): both asked, though they share an intent.
KNOWLEDGE_QUESTIONS = frozenset({"product_question", "policy_question"})
FALLBACK = "nlu_fallback"
MIN_QUESTION_WORDS = 4
_QUESTION = re.compile(
    r"^(?:how|what|when|where|which|who|why|do|does|did|is|are|can|could|will|would)\b", re.I
)


def _two_questions(first: str, second: str, one: Reading, two: Reading) -> bool:
    """A clear knowledge question, then a question of the same kind or one the NLU cannot
    place on its own ("how long does it take": the fallback tries it on the knowledge base,
    with what the first answer was about)."""
    return (
        _clear(one)
        and one.intent in KNOWLEDGE_QUESTIONS
        and (two.intent == one.intent or two.intent == FALLBACK)
        and all(_QUESTION.match(part.strip()) for part in (first, second))
        # "…to belgium take and is it free?": a short second question leans on the first's
        # words; sent whole, the knowledge base reads both together (tr12)
        and len(second.split()) >= MIN_QUESTION_WORDS
    )


# Questions about the customer's own orders, refunds and subscription, and the knowledge
# base's: a second part asked about its own thing is served even when the NLU is unsure of
# it ("when is my next coffee box": order_status 0.60, answered with the subscription's box).
STATUS_QUESTIONS = frozenset({"order_status", "refund_status"})
OWN_QUESTIONS = STATUS_QUESTIONS | KNOWLEDGE_QUESTIONS
_ASKS = re.compile(
    r"^(?:(?:how|what|when|where|which|who|why)(?:'?s|'?re)?|do|does|did|is|are|can|could|"
    r"will|would)\b",
    re.IGNORECASE,
)
# Words that lean on the first part ("… and when will it arrive", "is that possible"): such a
# part is no question of its own.
_BACK_REFERENCE = re.compile(
    r"\b(?:it|its|it'?s|they|them|their|that|this|those|these|one|ones|same)\b", re.IGNORECASE
)
_NAMED = re.compile(r"\b(?:my|the|your|our)\s+([a-z]+)", re.IGNORECASE)
# What any order is called: "where is my order and when does the parcel arrive" asks once.
_ANY_ORDER = frozenset(
    {"order", "orders", "parcel", "package", "delivery", "shipment", "stuff", "item", "items"}
)


def _asks_its_own(first: str, second: str) -> bool:
    """`second` is a question of its own: it asks, leans on no word of the first part and
    names something the first part does not ("… and when is my next coffee box")."""
    if not _ASKS.match(second.strip()) or _BACK_REFERENCE.search(second):
        return False
    said = {word.lower() for word in re.findall(r"[a-z']+", first, re.IGNORECASE)}
    return any(
        word.lower() not in said and word.lower() not in _ANY_ORDER
        for word in _NAMED.findall(second)
    )


# A part that asks for something: a question, or a request in the imperative or as a wish.
_REQUEST_WORDS = re.compile(
    r"^\W*(?:(?:ok|okay|so|and|also|but|pls|please|just)\s+)*(?:cancel|return|refund|change|"
    r"pause|resume|stop|track|send|give|check|help|i (?:want|need|would like|wanna)|i'd like|"
    r"can|could|would|will|where|when|what|why|how|is|are|do|does)\b",
    re.IGNORECASE,
)


def _reads_as_a_request(part: str) -> bool:
    return "?" in part or bool(_REQUEST_WORDS.match(part))


def plan(first: str, second: str, one: Reading, two: Reading) -> Plan | None:
    """The plan for a message cut into `first` and `second`, read as `one` and `two`; None
    when this cut is no compound message (try the next cut, or send the message as typed)."""
    if _two_questions(first, second, one, two):
        return Plan((first, second))
    if {one.intent, two.intent} <= ONE_RETURN:
        # "can i return the towel from it? it's the wrong colour", "the kettle is broken …
        # i want my money back": one return and its reason or the wish, sent whole (tester
        # 4, tw4_01, tw4_06: "Let's do one change at a time" about the reason)
        return None
    if (
        _clear(one)
        and one.intent in STATE_CHANGES
        and two.intent in STATE_CHANGES - {one.intent}
        and two.confidence >= DEFER_CONFIDENCE
    ):
        # "change the address on my jumper order and also cancel the coffee thing" (cancel
        # 0.62): deferring a second change only says so, so an unsure reading is enough;
        # sent whole, the cancellation was dropped without a word (tester 4, tw4_07)
        return Plan((first,), deferred=second)
    if _clear(one) and two.confidence >= DEFER_CONFIDENCE and _asks_its_own(first, second):
        if one.intent in STATUS_QUESTIONS and two.intent == one.intent:
            # "where is my casserole order and when is my next coffee box": both read as
            # order status, sent whole only the box was answered (tester 6, tw6_05)
            return Plan((first, second))
        if one.intent in STATE_CHANGES and two.intent in OWN_QUESTIONS:
            # "cancel the jumper order. also wheres the casserole one": the status, then the
            # cancellation waiting for its yes (tester 6, tw6_06: the status was dropped)
            return Plan((second, first))
    if not (_clear(one) and _clear(two)) or one.intent == two.intent:
        return None
    if "complain" in {one.intent, two.intent}:
        other = second if one.intent == "complain" else first
        if not _reads_as_a_request(other):
            # "delivery took forever and nobody answered my email": one complaint, sent
            # whole; split, its first half asked for an order number and the second
            # closed with "just tell me" (tester 5, tw5_27)
            return None
    if one.intent == "deny" and two.intent in REQUESTS - STATE_CHANGES:
        # "nah forget it, is the shirt 100% linen tho?": the question (which also drops a
        # change waiting for its yes, saying so); "Okay. Anything else?" was all it got. Not
        # before a change: "ok nevermind, keep the order, dont cancel" reads as a cancel.
        return Plan((second,))
    kinds = {one.intent, two.intent}
    if kinds - PLEASANTRIES - REQUESTS:
        return None  # an answer, a fallback, out of scope: not ours to split
    if kinds <= PLEASANTRIES:
        return None
    # "great. just great. 8 days late": a few words of "praise" next to a problem are
    # sarcasm, not praise; "the mug is lovely. the towel arrived torn" keeps both.
    if one.intent == "praise" and len(first.split()) <= SARCASM_WORDS:
        return Plan((second,))
    if two.intent == "praise" and len(second.split()) <= SARCASM_WORDS:
        return Plan((first,))
    if one.intent in PLEASANTRIES:
        return Plan((second,))
    if two.intent in PLEASANTRIES:
        return Plan((first,))
    changes_one, changes_two = one.intent in STATE_CHANGES, two.intent in STATE_CHANGES
    if changes_one and changes_two:
        return Plan((first,), deferred=second)
    if changes_one:
        return Plan((second, first))
    return Plan((first, second))


def without_repeats(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bot's messages of one turn without a message said twice in a row: two requests
    that both need the identity check asked "What's your order number?" twice (a tester's
    anonymous refund chat)."""
    kept: list[dict[str, Any]] = []
    for message in messages:
        if kept and message.get("text") and kept[-1].get("text") == message.get("text"):
            continue
        kept.append(message)
    return kept
