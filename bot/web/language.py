"""Other languages in the chat (issue #17 item 7; thresholds in bot/domain/language.py).

A customer message clearly not in English is never sent to Rasa's NLU as text (it would be
misread, often as feedback). While the bot is idle (no form, no yes/no question pending,
not paused) the web service triggers `EXTERNAL_other_language` with the language as an
entity instead; a rule answers, in that language when there is a template for it, that the
assistant speaks English for now and offers a person (data/rules/language.yml). In a form
or a pending question the text goes to the NLU as before: a French address or a German
survey comment is an answer there, not a change of language. Either way the conversation's
`language` is set, for the agents' console. The message is stored and shown as typed.

The detector (lingua, offline, a few languages) is built once per process when the web
service starts, off the event loop (about 1 s and 200-250 MB for the default 7 languages);
a message costs well under a millisecond.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import update

from bot.domain.language import LanguageDetector
from bot.storage.db import STORAGE_ERRORS
from bot.storage.models import Conversation
from bot.web.keys import RASA, SESSIONS, SETTINGS
from bot.web.proactive import is_idle
from bot.web.rasa_client import BotReply, RasaUnavailable

if TYPE_CHECKING:
    from bot.web.chat import Connection

logger = logging.getLogger(__name__)

LANGUAGE_INTENT = "EXTERNAL_other_language"
LANGUAGE_DETECTOR = web.AppKey("language_detector", LanguageDetector)

AskBot = Callable[[], Coroutine[Any, Any, list[BotReply] | None]]


@functools.cache
def _detector(languages: tuple[str, ...]) -> LanguageDetector:
    """One detector per process and language set (test apps share it)."""
    return LanguageDetector(languages)


async def language_detector_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: build the detector at start-up (never at import, never per message)."""
    languages = app[SETTINGS].language_detection
    if languages:
        detector = await asyncio.to_thread(_detector, languages)
        app[LANGUAGE_DETECTOR] = detector
        logger.info(
            "language detection: %s (built in %.2f s)",
            ",".join(detector.languages),
            detector.load_seconds,
        )
    yield


def route(connection: Connection, text: str, ask_bot: AskBot) -> AskBot:
    """The step of `chat._customer_message`: `ask_bot` for English (or unclear) text, else
    a turn that tags the conversation and asks Rasa through the language intent."""
    detector = connection.request.app.get(LANGUAGE_DETECTOR)
    language = detector.other_language(text) if detector is not None else None
    if language is None:
        return ask_bot
    return functools.partial(_ask_in_language, connection, language, ask_bot)


async def _ask_in_language(
    connection: Connection, language: str, ask_bot: AskBot
) -> list[BotReply] | None:
    app, conversation_id = connection.request.app, connection.conversation_id
    assert conversation_id is not None
    rasa = app[RASA]
    try:
        try:
            idle = is_idle(await rasa.tracker_state(conversation_id))
        except RasaUnavailable as exc:
            logger.warning("rasa unavailable for %s: %s", conversation_id, exc)
            return None
        if not idle:
            return await ask_bot()  # an answer to a form or a question: the NLU reads it
        try:
            if connection.identity_to_sync:
                await rasa.set_slots(conversation_id, {"identity": "verified"})
                connection.identity_to_sync = False
            return await rasa.trigger_intent(
                conversation_id, LANGUAGE_INTENT, {"language": language}
            )
        except RasaUnavailable as exc:
            logger.warning("rasa unavailable for %s: %s", conversation_id, exc)
            return None
    finally:
        # After Rasa's turn: by then the customer's message has been committed.
        await _tag(app, conversation_id, language)


async def _tag(app: web.Application, conversation_id: str, language: str) -> None:
    try:
        async with app[SESSIONS]() as session, session.begin():
            await session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id)
                .values(language=language)
            )
    except STORAGE_ERRORS:  # the tag is for the agents' convenience: never fail the turn on it
        logger.exception("could not tag %s as %s", conversation_id, language)
