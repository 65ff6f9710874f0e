"""Chat WebSocket: stores every message in the transcript and relays to Rasa."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from bot.domain import conversations
from bot.storage import repositories
from bot.storage.models import Conversation, Message, MessageSender
from bot.web.keys import RASA, SESSIONS, SETTINGS
from bot.web.rasa_client import RasaUnavailable

logger = logging.getLogger(__name__)

RETRY_LATER = "Sorry, I'm having trouble answering right now. Please try again in a moment."
WAITING_NOTE = "Thanks, I've added that to your request. A person from our team will reply here."
MAX_FRAME_BYTES = 64 * 1024


def _message_json(message: Message) -> dict[str, Any]:
    return {
        "type": "message",
        "sender": message.sender.value,
        "text": message.text,
        "buttons": message.buttons or [],
        "time": message.created_at.isoformat(),
    }


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"code": code, "message": message}}


def _origin_allowed(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser; browsers always send Origin on WebSocket upgrades
    allowed = request.app[SETTINGS].allowed_origins
    same_host = origin.split("://", 1)[-1] == request.host
    return same_host or origin in allowed


async def chat_socket(request: web.Request) -> web.WebSocketResponse:
    if not _origin_allowed(request):
        raise web.HTTPForbidden(
            text=json.dumps(_error("forbidden_origin", "This site may not open the chat.")),
            content_type="application/json",
        )
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_FRAME_BYTES)
    await ws.prepare(request)
    conversation: Conversation | None = None
    async for frame in ws:
        if frame.type is not WSMsgType.TEXT:
            continue
        try:
            data = json.loads(frame.data)
        except ValueError:
            await ws.send_json(_error("bad_request", "Messages must be JSON."))
            continue
        if not isinstance(data, dict):
            await ws.send_json(_error("bad_request", "Messages must be JSON objects."))
            continue
        if data.get("type") == "hello":
            conversation = await _hello(request, ws, data.get("token"))
        elif conversation is None:
            await ws.send_json(_error("no_session", "Say hello first."))
        elif data.get("type") == "message":
            await _customer_message(request, ws, conversation.id, data.get("text"))
        else:
            await ws.send_json(_error("bad_request", "Unknown message type."))
    return ws


async def _hello(request: web.Request, ws: web.WebSocketResponse, token: Any) -> Conversation:
    async with request.app[SESSIONS]() as session, session.begin():
        chat = await conversations.start_or_resume(
            session, token if isinstance(token, str) else None
        )
    await ws.send_json(
        {
            "type": "session",
            "token": chat.token,
            "status": chat.conversation.status.value,
            "history": [_message_json(m) for m in chat.history],
        }
    )
    return chat.conversation


async def _store(request: web.Request, conversation_id: str, sender: MessageSender, text: str,
                 buttons: list[dict[str, str]] | None = None) -> Message:  # fmt: skip
    async with request.app[SESSIONS]() as session, session.begin():
        return await repositories.add_message(session, conversation_id, sender, text, buttons)


async def _customer_message(
    request: web.Request, ws: web.WebSocketResponse, conversation_id: str, text: Any
) -> None:
    limit = request.app[SETTINGS].max_message_chars
    if not isinstance(text, str) or not text.strip():
        await ws.send_json(_error("empty_message", "Please type a message."))
        return
    if len(text) > limit:
        await ws.send_json(
            _error(
                "message_too_long",
                f"Messages are limited to {limit} characters; please shorten it.",
            )
        )
        return
    text = text.strip()
    await _store(request, conversation_id, MessageSender.customer, text)
    async with request.app[SESSIONS]() as session:
        conversation = await session.get(Conversation, conversation_id)
    if conversation is None or not conversations.bot_may_answer(conversation):
        note = await _store(request, conversation_id, MessageSender.system, WAITING_NOTE)
        await ws.send_json(_message_json(note))
        return
    await ws.send_json({"type": "typing", "on": True})
    try:
        replies = await request.app[RASA].send(conversation_id, text)
    except RasaUnavailable as exc:
        logger.warning("rasa unavailable for %s: %s", conversation_id, exc)
        failure = await _store(request, conversation_id, MessageSender.system, RETRY_LATER)
        await ws.send_json(_message_json(failure))
        return
    finally:
        await ws.send_json({"type": "typing", "on": False})
    for reply in replies:
        stored = await _store(
            request, conversation_id, MessageSender.bot, reply.text, reply.buttons
        )
        await ws.send_json(_message_json(stored))
