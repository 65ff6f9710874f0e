"""Build rasa_sdk trackers and run actions the way the action server does."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

DOMAIN_FILE = Path(__file__).resolve().parent.parent / "domain.yml"


@lru_cache(maxsize=1)
def domain() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOMAIN_FILE.read_text())
    return loaded


def initial_slots() -> dict[str, Any]:
    return {name: spec.get("initial_value") for name, spec in domain()["slots"].items()}


def tracker(
    sender_id: str,
    text: str = "",
    intent: str = "inform",
    slots: dict[str, Any] | None = None,
    active_loop: str | None = None,
    entities: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
    extracted: dict[str, Any] | None = None,
) -> Tracker:
    """A tracker right after a user message; `extracted` are the slots Rasa filled from it."""
    values = initial_slots()
    values.update(slots or {})
    values.update(extracted or {})
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.99},
        "entities": entities or [],
        "message_id": f"m-{abs(hash(text)) % 10_000}",
    }
    return Tracker(
        sender_id=sender_id,
        slots=values,
        latest_message=latest,
        events=events
        or [
            {"event": "user", "text": text, "parse_data": latest},
            *({"event": "slot", "name": k, "value": v} for k, v in (extracted or {}).items()),
        ],
        paused=False,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name="action_listen",
    )


def nlu_ranking(*pairs: tuple[str, float]) -> list[dict[str, Any]]:
    """An intent ranking as the NLU gives it, from (intent, confidence) pairs."""
    return [{"name": name, "confidence": confidence} for name, confidence in pairs]


def ranked_tracker(
    sender_id: str,
    text: str,
    ranking: Sequence[tuple[str, float]],
    slots: dict[str, Any] | None = None,
    entities: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
) -> Tracker:
    """`tracker` right after `text`, which the NLU ranked as `ranking` ((intent, confidence)
    pairs, likeliest first): the first pair is the message's intent."""
    state = tracker(sender_id, text, ranking[0][0], slots, entities=entities, events=events)
    intents = nlu_ranking(*ranking)
    state.latest_message["intent"] = dict(intents[0])
    state.latest_message["intent_ranking"] = intents
    return state


async def run(action: Action, state: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The events an action returns and the messages it sends."""
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, state, domain())
    return events, dispatcher.messages


def slot_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}
