"""Which customer turns the bot probably misunderstood (issue #24): the review inbox's rules.

Pure functions over `Turn` (what the NLU made of one customer message and what the bot did
about it); `bot/domain/review_inbox.py` stores the result. A turn is flagged for one or
more `Reason`s:

* `low_confidence` — the NLU's confidence in its best real intent is below the fallback
  threshold of config.yml's FallbackClassifier (`LOW_CONFIDENCE`, 0.45; when the classifier
  replaced the intent by `nlu_fallback`, the confidence of the best intent behind it);
* `fallback` — the fallback fired: the intent is `nlu_fallback`, or the bot ran
  `action_handle_fallback`, or Rasa's `action_default_fallback` as its *first* step (after
  the bot already answered the request it only means no policy predicted what came next:
  a dialogue gap, not a misreading). The customer's refusal of the "did you mean" buttons
  ("none of these", read as `deny` right after they were offered) is understood: the
  fallback action that asks for their own words is not counted for it;
* `did_you_mean` — the bot offered its likeliest meanings as buttons (the fallback's
  `utter_fallback_choices`, or the "did you mean" buttons before an account change of
  bot/domain/understanding.py: any reply offering "Something else");
* `rephrase` — the customer's *next* message has the same intent and a text similarity of
  at least `rephrase_similarity` (default 0.6): the earlier turn is flagged, as the one the
  customer had to say again. Similarity: `difflib.SequenceMatcher.ratio()` of the two texts
  lower-cased, with punctuation removed and whitespace collapsed (2·matches / total
  characters: 1.0 identical, 0.0 nothing in common). Never a rephrase: small talk
  (`affirm`, `deny`, `greet`, `thank`, `goodbye`: "yes" twice answers two questions); texts
  without a word (emoji, punctuation); an answer to a question the bot asked again (the
  bot ended both its replies with the same form question, `utter_ask_<slot>`: the identity
  check's second email is a new attempt, not the first one said again); a request the bot
  had served and answered the same way again (its reply restates the answer,
  `utter_repeated_*` of bot/domain/repeats.py: the customer asked again after an answer);
* `human_after_misunderstanding` — the intent is `request_human` and the customer's
  previous turn was misunderstood (low confidence, fallback, did you mean or rephrase);
* `negative_sentiment` — VADER compound ≤ -0.5 of a message sent right after a bot reply.

A chat's first message that asks nothing — no letter or digit ("👍", "??"), or only words
the bot has never seen in its training data ("blorp zingle wumpus") — with no bot message
before it is no request to misunderstand: it gets no reason at all (`no_request`;
docs/decisions.md, "Review inbox: nonsense openers are not flagged").
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

FALLBACK_INTENT = "nlu_fallback"
HUMAN_INTENT = "request_human"
# config.yml: FallbackClassifier threshold (tests/test_turn_review.py checks they agree).
LOW_CONFIDENCE = 0.45
REPHRASE_SIMILARITY = 0.6
NEGATIVE_SENTIMENT = -0.5
FALLBACK_ACTION = "action_handle_fallback"
DEFAULT_FALLBACK = "action_default_fallback"
# Steps that only close a form before the bot's real move ("first step" skips them).
BOOKKEEPING_STEPS = frozenset({"action_deactivate_loop"})
REFUSAL_INTENT = "deny"  # "none of these" and its typed forms (data/nlu/digressions.yml)
# A form's question for a slot (Rasa's utter_ask_<slot> / action_ask_<slot>).
QUESTION_PREFIXES = ("utter_ask_", "action_ask_")
# The bot said its previous answer again (bot/domain/repeats.py).
RESTATEMENT_STEPS = frozenset(
    {"utter_repeated_answer", "utter_repeated_answer_again", "utter_repeated_confirmation"}
)
CHOICE_STEPS = frozenset({"utter_fallback_choices"})
# Payloads of the "Something else" button that ends every "did you mean" offer.
SOMETHING_ELSE_PAYLOADS = frozenset({"none of these", "something else"})
SMALL_TALK = frozenset({"affirm", "deny", "greet", "thank", "goodbye"})

_PUNCTUATION = re.compile(r"[^\w\s]")
_WORD = re.compile(r"[^\W_]+")
_SPACE = re.compile(r"\s+")


class Reason(str, enum.Enum):
    low_confidence = "low_confidence"
    fallback = "fallback"
    did_you_mean = "did_you_mean"
    rephrase = "rephrase"
    human_after_misunderstanding = "human_after_misunderstanding"
    negative_sentiment = "negative_sentiment"


MISUNDERSTANDINGS = frozenset(
    {Reason.low_confidence, Reason.fallback, Reason.did_you_mean, Reason.rephrase}
)


@dataclass(frozen=True)
class Rules:
    low_confidence: float = LOW_CONFIDENCE
    rephrase_similarity: float = REPHRASE_SIMILARITY
    negative_sentiment: float = NEGATIVE_SENTIMENT


@dataclass(frozen=True)
class Turn:
    text: str
    intent: str | None
    confidence: float | None = None
    runner_up_intent: str | None = None
    runner_up_confidence: float | None = None
    steps: tuple[str, ...] = ()  # responses and actions the bot ran for it
    offered_choices: bool = False  # a reply offered "Something else" (did you mean)
    after_bot_reply: bool = False  # the message before it in the chat was the bot's
    sentiment: float | None = None  # VADER compound
    asked: str | None = None  # the form question ending the bot's reply before it
    no_request: bool = False  # a nonsense or emoji-only opener (`no_request()`)
    after_choices: bool = False  # the bot's reply before it offered "did you mean" buttons


def understood_intent(turn: Turn) -> str | None:
    """The real intent the NLU leaned to: behind `nlu_fallback`, the runner-up."""
    if turn.intent == FALLBACK_INTENT:
        return turn.runner_up_intent
    return turn.intent


def understood_confidence(turn: Turn) -> float | None:
    if turn.intent == FALLBACK_INTENT:
        return turn.runner_up_confidence if turn.runner_up_intent else 0.0
    return turn.confidence


def normalised(text: str) -> str:
    return _SPACE.sub(" ", _PUNCTUATION.sub(" ", text.lower())).strip()


def similarity(first: str, second: str) -> float:
    """difflib's ratio of the normalised texts, in [0, 1]."""
    a, b = normalised(first), normalised(second)
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def question(steps: Iterable[str]) -> str | None:
    """The form question a bot turn ends with (`utter_ask_email`), if it ends with one."""
    last = list(steps)[-1:]
    return last[0] if last and last[0].startswith(QUESTION_PREFIXES) else None


def no_request(text: str, opening: bool, vocabulary: Collection[str]) -> bool:
    """A chat's first message (`opening`: no customer or bot message before it) that asks
    nothing: no letter or digit, or no word with a digit and none in `vocabulary` (the
    words of the bot's training data; an empty vocabulary knows every word)."""
    if not opening:
        return False
    words = _WORD.findall(text.lower())
    if not words:
        return True
    if not vocabulary or any(any(ch.isdigit() for ch in w) for w in words):
        return False
    return not any(w in vocabulary for w in words)


def rephrased(previous: Turn, current: Turn, rules: Rules | None = None) -> bool:
    """`current` says `previous` again: same intent, similar words (not small talk, not
    word-less, not an answer to a question asked again, not a request asked again after
    the bot answered it)."""
    rules = rules or Rules()
    intent = previous.intent
    if intent is None or intent != current.intent or intent in SMALL_TALK:
        return False
    if not normalised(previous.text) or not normalised(current.text):
        return False
    if current.asked is not None and current.asked == previous.asked:
        return False
    if RESTATEMENT_STEPS.intersection(current.steps):
        return False
    return similarity(previous.text, current.text) >= rules.rephrase_similarity


def fallback_fired(turn: Turn, previous_reasons: Iterable[Reason] = ()) -> bool:
    """The fallback ran for this message (see the module's `fallback`)."""
    if turn.intent == FALLBACK_INTENT:
        return True
    if FALLBACK_ACTION in turn.steps:
        offered = turn.after_choices or Reason.did_you_mean in set(previous_reasons)
        refusal = offered and turn.intent == REFUSAL_INTENT
        if not refusal:
            return True
    first = next((s for s in turn.steps if s not in BOOKKEEPING_STEPS), None)
    return first == DEFAULT_FALLBACK


def own_reasons(
    turn: Turn, previous_reasons: Iterable[Reason] = (), rules: Rules | None = None
) -> frozenset[Reason]:
    """The reasons known when the turn happens (a rephrase is only known at the next
    one); `previous_reasons`: those of the customer's previous turn in the chat."""
    rules = rules or Rules()
    if turn.no_request:
        return frozenset()
    previous_reasons = frozenset(previous_reasons)
    reasons: set[Reason] = set()
    confidence = understood_confidence(turn)
    if turn.intent is not None and confidence is not None and confidence < rules.low_confidence:
        reasons.add(Reason.low_confidence)
    if fallback_fired(turn, previous_reasons):
        reasons.add(Reason.fallback)
    if turn.offered_choices or CHOICE_STEPS.intersection(turn.steps):
        reasons.add(Reason.did_you_mean)
    if turn.intent == HUMAN_INTENT and MISUNDERSTANDINGS.intersection(previous_reasons):
        reasons.add(Reason.human_after_misunderstanding)
    if (
        turn.after_bot_reply
        and turn.sentiment is not None
        and turn.sentiment <= rules.negative_sentiment
    ):
        reasons.add(Reason.negative_sentiment)
    return frozenset(reasons)
