"""When the bot is unsure (issue #17, SPEC §5): the likeliest meanings as buttons plus
"something else"; after that fails again a person is offered, never imposed.

Button payloads are plain phrases that are training examples of their intent
(tests/test_fallback.py checks it), so a click is understood like typed text; customers'
`/intent` text is never parsed as an intent. The replies are domain.yml responses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.domain import understanding

FALLBACK_ACTION = "action_handle_fallback"
FALLBACK_INTENT = "nlu_fallback"

# Meanings the bot can offer: intent → (button title, payload the NLU reads as that intent).
CHOICES = understanding.MEANINGS
DEFAULT_CHOICES = ("order_status", "return_item", "product_question")
MAX_CHOICES = 3
# Below this a ranked meaning is noise, not a guess worth a button.
MIN_CONFIDENCE = 0.05

SOMETHING_ELSE = {"title": "Something else", "payload": "none of these"}
PERSON = {"title": "Talk to a person", "payload": CHOICES["request_human"][1]}

UTTER_CHOICES = "utter_fallback_choices"
UTTER_REPHRASE = "utter_fallback_rephrase"
UTTER_OFFER_PERSON = "utter_fallback_offer_person"
UTTER_SYMBOLS = "utter_fallback_symbols"
UTTER_UPSET = "utter_fallback_upset"
# An angry face or a thumbs-down on its own (tester: "😡" got "I'm here to help!").
_UPSET = frozenset("😡😠🤬👎😤💢😒🙄")


# A thumbs-up or OK hand on its own answers a survey offer as a yes (tester tq26: "👍" to
# "May we ask two quick questions?" got "Tell me in a few words what you need"). Not used
# for account changes, which want a yes in words.
_APPROVING = frozenset("👍👌✅🙆🆗")


def is_approving_emoji(text: str) -> bool:
    signs = [ch for ch in text if not ch.isspace() and ch not in "\ufe0f\u200d"]
    return (
        bool(signs)
        and not has_words(text)
        and all(
            ch in _APPROVING or 0x1F3FB <= ord(ch) <= 0x1F3FF
            for ch in signs  # skin tones
        )
    )


UTTER_OFFER_AGAIN = "utter_offer_human_what_now"
UTTER_WHAT_NOW = "utter_what_now"
# "so what can u do", "what now?" while a person is on offer (tester tr13): the offer once
# more, in other words, instead of "not sure I understood".
_WHAT_NOW = re.compile(
    r"\b(?:what (?:can|could|will|do|would) (?:u|you|ya) do|what now|so what now|now what|"
    r"what next|what happens now|then what|what (?:are|r) my options|what do i do)\b",
    re.IGNORECASE,
)


# "is anyone there??", "still waiting", "when will someone reply": about the person asked for.
_ANYONE_THERE = re.compile(
    r"\b(?:(?:is )?(?:any|some) ?(?:one|body) (?:there|here|around|coming)|are you there|"
    r"still waiting|how long (?:do|will|must) i (?:have to )?wait|when will (?:someone|somebody|"
    r"a person|an agent|they) (?:reply|answer|come|be here))\b",
    re.IGNORECASE,
)


def asks_for_the_person(text: str) -> bool:
    return bool(_ANYONE_THERE.search(text or ""))


def asks_what_now(text: str) -> bool:
    return bool(_WHAT_NOW.search(text or ""))


@dataclass(frozen=True)
class FallbackReply:
    response: str
    buttons: list[dict[str, str]] = field(default_factory=list)


def has_words(text: str) -> bool:
    """Whether the text holds a letter or a digit (in any script): "?" and "👍" do not."""
    return any(ch.isalnum() for ch in text)


def likeliest(ranking: Iterable[dict[str, Any]], limit: int = MAX_CHOICES) -> list[str]:
    """The offerable intents of NLU's ranking, most likely first."""
    chosen: list[str] = []
    for item in ranking:
        name = item.get("name")
        confidence = float(item.get("confidence") or 0.0)
        if name in CHOICES and name not in chosen and confidence >= MIN_CONFIDENCE:
            chosen.append(str(name))
        if len(chosen) == limit:
            break
    return chosen


def _buttons(intents: Sequence[str]) -> list[dict[str, str]]:
    return [{"title": CHOICES[i][0], "payload": CHOICES[i][1]} for i in intents]


def streak(events: Sequence[dict[str, Any]]) -> int:
    """How many customer messages in a row, before the latest one, the fallback answered."""
    turns: list[set[str]] = []
    for event in events:
        if event.get("event") == "user":
            turns.append(set())
        elif event.get("event") == "action" and turns:
            turns[-1].add(str(event.get("name")))
    count = 0
    for actions in reversed(turns[:-1]):
        if FALLBACK_ACTION not in actions:
            break
        count += 1
    return count


# A question the NLU could not place is tried on the knowledge base first, whatever it was
# ranked as ("does the merino jumper shrink": product_question 0.33, sf47; "where do i enter a
# discount code?": change_address 0.35, tester 3 tw3_19); only a confident answer is given,
# else the usual choices.
def may_be_a_knowledge_question(text: str, intent: str | None) -> bool:
    return intent == FALLBACK_INTENT and understanding.reads_as_ask(text)


def reply(
    text: str, intent: str | None, ranking: Sequence[dict[str, Any]], failed_before: int
) -> FallbackReply:
    """The bot's answer to a message it did not understand (or to "none of these")."""
    if not has_words(text):
        if any(ch in _UPSET for ch in text):
            # sorry first; a person is offered only if it fails again (issue #17 item 4)
            return FallbackReply(UTTER_UPSET, _buttons(DEFAULT_CHOICES))
        return FallbackReply(UTTER_SYMBOLS, _buttons(DEFAULT_CHOICES))
    if intent != FALLBACK_INTENT:
        # "Something else" after the choices: ask for their own words, a person on offer.
        return FallbackReply(UTTER_REPHRASE, [PERSON])
    guesses = [i for i in likeliest(ranking) if i != "request_human"]
    if failed_before >= 1:
        # Not understood again: a person is offered (a button), the chat goes on either way.
        return FallbackReply(UTTER_OFFER_PERSON, [*_buttons(guesses[:2]), PERSON])
    if len(guesses) < 2:
        guesses += [i for i in DEFAULT_CHOICES if i not in guesses]
    return FallbackReply(UTTER_CHOICES, [*_buttons(guesses[:MAX_CHOICES]), SOMETHING_ELSE])
