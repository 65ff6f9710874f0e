"""Per-process database access for the action server, created on first use (not at import)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import (
    ActionExecuted,
    ActiveLoop,
    ConversationPaused,
    EventType,
    SlotSet,
    UserUttered,
)
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain import order_cards, repeats, texts
from bot.domain.chat import Turn
from bot.storage.db import STORAGE_ERRORS as DB_ERRORS
from bot.storage.db import create_engine, create_session_factory

logger = logging.getLogger(__name__)


def unavailable_text() -> str:
    """Said when the database cannot be reached (the turn's writes were rolled back)."""
    return texts.render("utter_unavailable")


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        engine = create_engine(settings.database_url)
        return cls(settings, engine, create_session_factory(engine))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One transaction per action run: all of a turn's writes land, or none."""
        async with self.session_factory() as session, session.begin():
            yield session


_services: Services | None = None


def get_services() -> Services:
    global _services
    if _services is None:
        _services = Services.from_settings(Settings.from_env())
    return _services


def use_services(services: Services | None) -> None:
    """Tests point the actions at their own database."""
    global _services
    _services = services


def emit(
    dispatcher: CollectingDispatcher, turn: Turn, tracker: Tracker | None = None
) -> list[EventType]:
    """The turn's messages and events; with the `tracker`, a first message that would
    repeat the bot's previous one word for word is restated (bot/domain/repeats.py)."""
    previous = repeats.previous_bot_texts(tracker.events) if tracker is not None else []
    for index, (text, buttons) in enumerate(turn.messages):
        again = (
            repeats.restate(text, buttons, previous, turn.slots.get("awaiting") == "confirmation")
            if index == 0
            else None
        )
        if again is not None:
            dispatcher.utter_message(
                response=again.response, answer=again.answer, buttons=again.buttons or None
            )
            continue
        cards = turn.cards.get(text)
        dispatcher.utter_message(
            text=text,
            buttons=buttons or None,
            # Order cards ride along as Rasa's `custom` payload (bot/domain/order_cards.py).
            json_message={order_cards.CUSTOM_KEY: cards} if cards else None,
        )
    events: list[EventType] = [SlotSet(name, value) for name, value in turn.slots.items()]
    if turn.end_form:
        events += [ActiveLoop(None), SlotSet("requested_slot", None)]
    if turn.pause:
        events.append(ConversationPaused())
    return events


def unavailable(dispatcher: CollectingDispatcher, error: Exception) -> list[EventType]:
    logger.exception("storage unavailable", exc_info=error)
    dispatcher.utter_message(text=unavailable_text())
    return []


STORAGE_ERRORS: tuple[type[Exception], ...] = (*DB_ERRORS, ConnectionError)


def put_back(tracker: Tracker, parse_data: dict[str, Any] | None = None) -> list[EventType]:
    """The latest message again, after a listen: served as if it had just been typed (as
    Rasa's two-stage fallback does), read as `parse_data` (default: as the NLU read it)."""
    return [
        ActionExecuted("action_listen"),
        UserUttered(
            latest_text(tracker),
            parse_data=parse_data if parse_data is not None else (tracker.latest_message or {}),
            input_channel=tracker.get_latest_input_channel(),
        ),
    ]


def put_back_as(tracker: Tracker, intent: str) -> list[EventType]:
    """The latest message again, read as `intent` for sure (a "👍" as a yes, "and the
    jumper?" as data): the rules for that intent serve it."""
    reading = {"name": intent, "confidence": 1.0}
    latest = tracker.latest_message or {}
    return put_back(tracker, {**latest, "intent": reading, "intent_ranking": [reading]})


def latest_text(tracker: Tracker) -> str:
    return str(tracker.latest_message.get("text") or "")


# rasa_ext/compound.MORE_FOLLOWS (the action server does not import the Rasa extensions).
MORE_FOLLOWS = "compound_more_follows"


def more_follows(tracker: Tracker) -> bool:
    """The latest message is the first of two requests typed in one message."""
    metadata = tracker.latest_message.get("metadata") or {}
    return bool(isinstance(metadata, dict) and metadata.get(MORE_FOLLOWS))


def latest_intent(tracker: Tracker) -> str | None:
    intent: dict[str, Any] = tracker.latest_message.get("intent") or {}
    name = intent.get("name")
    return str(name) if name else None


class DomainAction:
    """Mixin for actions whose whole work is one `Turn` computed in one transaction."""

    async def turn(self, session: AsyncSession, tracker: Tracker) -> Turn:
        raise NotImplementedError

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        services = get_services()
        try:
            async with services.transaction() as session:
                turn = await self.turn(session, tracker)
        except STORAGE_ERRORS as error:
            return unavailable(dispatcher, error)
        return emit(dispatcher, turn, tracker)
