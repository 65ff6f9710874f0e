"""No answer word for word twice in a row (issue #17 item 5).

A customer who asks the same thing again did not get what they needed from the first answer
("where is my parcel" → status, "where is my parcel??" → the same status). The facts are
recomputed on every turn (an updated date appears on its own); when the wording would still
be the same as the bot's previous message, the answer is restated with a person offered
(`utter_repeated_answer`), or, for a confirmation question asked again, prefaced as a check
(`utter_repeated_confirmation`). The texts are domain.yml responses; the action server fills
them (actions/services.emit).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.domain.support import PERSON_BUTTON

REPEATED_ANSWER = "utter_repeated_answer"
REPEATED_CONFIRMATION = "utter_repeated_confirmation"
# Asked a third time: the restatement itself is not said twice either.
REPEATED_AGAIN = "utter_repeated_answer_again"
# Payloads that already lead to a person: no second "Talk to a person" next to them.
_PERSON_PAYLOADS = {PERSON_BUTTON["payload"], "/request_human"}


@dataclass(frozen=True)
class Restatement:
    response: str
    answer: str
    buttons: list[dict[str, str]]


def previous_bot_texts(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """The texts of the bot's messages between the customer's last two messages (an answer
    is often followed by a survey question: the answer still counts as said)."""
    texts: list[str] = []
    seen_user = False
    for event in reversed(list(events)):
        kind = event.get("event")
        if kind == "user":
            if seen_user:
                break
            seen_user = True
        elif kind == "bot" and seen_user and event.get("text"):
            texts.append(str(event["text"]))
    return texts


def _said_in(text: str, said: str) -> bool:
    """`text` word for word, alone or inside a restatement of it ("I've checked again…")."""
    return " ".join(text.split()) in " ".join(said.split())


def restate(
    text: str, buttons: list[dict[str, str]], previous: Iterable[str], confirming: bool
) -> Restatement | None:
    """How to say `text` when the bot said it word for word in its `previous` turn (also
    inside its restatement: asked a third time, the answer is restated again, a person
    still offered); None when it is not a repeat."""
    matches = [said for said in previous if _said_in(text, said)]
    if not matches:
        return None
    if confirming:
        return Restatement(REPEATED_CONFIRMATION, text, buttons)
    response = REPEATED_ANSWER if any(_said_in(said, text) for said in matches) else REPEATED_AGAIN
    if any(button.get("payload") in _PERSON_PAYLOADS for button in buttons):
        return Restatement(response, text, buttons)
    return Restatement(response, text, [*buttons, PERSON_BUTTON])
