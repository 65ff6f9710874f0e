"""Delivery to the chat: store a message, then show it on the customer's live tabs and to
the staff watching; one bot turn at a time per conversation.

Everything that puts a message in front of a customer goes through here: the chat socket
(bot/web/chat.py), the console (agent replies, hand-backs), photos, proactive surveys and
insight notices. This module imports no handler module, so they all may import it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiohttp.helpers import ChainMapProxy

from bot.domain.enums import ConversationStatus, MessageSender
from bot.domain.views import message_json
from bot.storage import repositories
from bot.storage.models import Message
from bot.web.keys import HUB, SESSIONS, STAFF_HUB
from bot.web.rasa_client import BotReply

AppState = web.Application | ChainMapProxy


def message_frame(message: Message) -> dict[str, Any]:
    return {"type": "message", **message_json(message), "client_id": message.client_message_id}


async def push(
    app: AppState,
    conversation_id: str,
    sender: MessageSender,
    text: str,
    buttons: list[dict[str, str]] | None = None,
    author: str | None = None,
) -> Message:
    """Store a message and deliver it to every live tab; offline customers get it with the
    history when they reconnect. Used for bot replies, agent replies and proactive surveys."""
    async with app[SESSIONS]() as session, session.begin():
        message = await repositories.add_message(
            session, conversation_id, sender, text, buttons, author=author
        )
    await announce(app, message)
    return message


async def push_replies(
    app: AppState, conversation_id: str, replies: Sequence[BotReply]
) -> list[Message]:
    """Store a bot turn's replies in one transaction (one INSERT) and deliver them."""
    if not replies:
        return []
    async with app[SESSIONS]() as session, session.begin():
        messages = await repositories.add_messages(
            session,
            conversation_id,
            MessageSender.bot,
            [(r.text, r.buttons) for r in replies],
            [r.cards for r in replies],
        )
    for message in messages:
        await announce(app, message)
    return messages


async def announce(
    app: AppState, message: Message, exclude: web.WebSocketResponse | None = None
) -> None:
    """Deliver a stored message to the customer's live tabs (but `exclude`, the tab that
    sent it) and the staff watching."""
    frame = message_frame(message)
    await app[HUB].send(message.conversation_id, frame, exclude=exclude)
    await app[STAFF_HUB].conversation_event(
        message.conversation_id, {"type": "message", "message": frame}
    )


async def tell_status(app: AppState, conversation_id: str, status: ConversationStatus) -> None:
    """Tell the customer's live tabs that the chat changed hands (a `status` frame): the
    widget drops "Back to the assistant" once nobody waits for a person (docs/widget.md)."""
    await app[HUB].send(conversation_id, {"type": "status", "status": status.value})


# One bot turn at a time per conversation (in this process): a proactive survey started by
# the server never lands between a customer's message and its replies.
_turn_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def turn_lock(conversation_id: str) -> asyncio.Lock:
    lock = _turn_locks.get(conversation_id)
    if lock is None:
        lock = _turn_locks[conversation_id] = asyncio.Lock()
    return lock
