"""Photos in the chat (issue #19 item 2; checks and storage: bot/domain/photos.py).

* `POST /chat/photos`: the widget (or the chat page) sends the image as the raw request
  body, with its conversation's resume token in `X-Chat-Token` (the same secret that
  resumes the chat; the upload cannot reach any other conversation) and an optional
  `X-Client-Id` (a re-sent upload is stored once). Cross-origin from the shops' pages
  (ALLOWED_ORIGINS), like the WebSocket. The photo becomes a customer message in the
  transcript, and the bot acknowledges it with a domain.yml response.
* `GET /console/api/photos/{id}`: the image, for staff who may read its conversation
  (bot/domain/staff_access.py); 404 for everybody else. Customers and visitors are never
  served a stored photo (docs/decisions.md "Photos").
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.domain import conversations, email_reply, photos, texts
from bot.domain.enums import MessageSender, StaffRole
from bot.storage import repositories
from bot.storage.models import Conversation, Message, Photo, utcnow
from bot.web.auth import is_same_origin, may_read_conversation, require_roles
from bot.web.chat import RATE_LIMITED
from bot.web.delivery import announce, message_frame, push, turn_lock
from bot.web.errors import json_error
from bot.web.keys import HUB, RASA, SESSIONS, SETTINGS
from bot.web.rasa_client import RasaUnavailable

logger = logging.getLogger(__name__)

TOKEN_HEADER = "X-Chat-Token"
CLIENT_ID_HEADER = "X-Client-Id"
# Asking Rasa whether a damage report is in progress must not hold the upload up.
REPORT_LOOKUP_SECONDS = 2.0
_CORS_HEADERS = "Content-Type, X-Chat-Token, X-Client-Id"


def _cors(request: web.Request) -> dict[str, str]:
    origin = request.headers.get("Origin")
    if origin is None or origin not in request.app[SETTINGS].allowed_origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": _CORS_HEADERS,
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def _origin_allowed(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser (a browser always sends Origin on a cross-site POST)
    return is_same_origin(request, origin) or origin in request.app[SETTINGS].allowed_origins


def _refusal(request: web.Request, error: photos.PhotoRefused) -> web.Response:
    response = json_error(error.status, error.code, error.message)
    response.headers.update(_cors(request))
    return response


async def upload_preflight(request: web.Request) -> web.Response:
    return web.Response(status=204, headers=_cors(request))


async def _read_body(request: web.Request, limit: int) -> bytes:
    """At most `limit` bytes; PhotoRefused as soon as the body is longer (never read whole)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise photos.refused("photo_too_big", limit=photos.megabytes(limit))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise photos.refused("photo_too_big", limit=photos.megabytes(limit))
        chunks.append(chunk)
    return b"".join(chunks)


async def _conversation(request: web.Request) -> Conversation:
    token = request.headers.get(TOKEN_HEADER, "")
    conversation = None
    if 0 < len(token) <= 200 and email_reply.is_resume_link_token(token):
        # A signed resume token (an emailed reply's link, or a signed-in customer's chat
        # continued in a fresh browser: bot/domain/conversations.py) until it expires.
        linked = email_reply.conversation_of_link(
            request.app[SETTINGS].widget_secret, token, utcnow()
        )
        if linked is not None:
            async with request.app[SESSIONS]() as session:
                conversation = await session.get(Conversation, linked)
    elif 0 < len(token) <= 200:
        digest = hashlib.sha256(token.encode()).hexdigest()
        async with request.app[SESSIONS]() as session:
            conversation = await session.scalar(
                select(Conversation).where(Conversation.access_token_hash == digest)
            )
    if conversation is None:
        raise photos.PhotoRefused("no_session", texts.render("utter_photo_no_chat"), 401)
    return conversation


async def _damage_report(request: web.Request, conversation_id: str) -> photos.Report | None:
    """The damage report in progress: the customer's latest request was `damaged_item`
    (Rasa's `support_request` slot); None when it was not, or Rasa cannot say."""
    try:
        state = await asyncio.wait_for(
            request.app[RASA].tracker_state(conversation_id), REPORT_LOOKUP_SECONDS
        )
    except (RasaUnavailable, asyncio.TimeoutError) as exc:
        logger.warning("could not read the request in progress of %s: %s", conversation_id, exc)
        return None
    slots = state.get("slots") if isinstance(state, dict) else None
    if not isinstance(slots, dict) or slots.get("support_request") != "damaged_item":
        return None
    number = slots.get("order_number")
    return photos.Report(str(number) if isinstance(number, str) and number else None)


def _client_id(request: web.Request) -> str | None:
    value = request.headers.get(CLIENT_ID_HEADER)
    return value if value and len(value) <= 64 else None


async def upload(request: web.Request) -> web.Response:
    """Store one photo; 201 with the stored message and the bot's acknowledgement."""
    if not _origin_allowed(request):
        return json_error(403, "forbidden_origin", "This site may not send photos to the chat.")
    app = request.app
    settings = app[SETTINGS]
    try:
        conversation = await _conversation(request)
        if not app[HUB].allow(
            conversation.id, settings.rate_limit_messages, settings.rate_window_seconds
        ):
            raise photos.PhotoRefused("rate_limited", RATE_LIMITED, 429)
        async with app[SESSIONS]() as session:
            count = await photos.count_in_conversation(session, conversation.id)
        if count >= settings.photo_max_per_conversation:
            raise photos.refused("photo_too_many", count=count)
        data = await _read_body(request, settings.photo_max_bytes)
        loop = asyncio.get_running_loop()
        # Decoding and encoding take up to a second for a large photo: off the event loop.
        image = await loop.run_in_executor(
            None,
            lambda: photos.clean(
                data, max_bytes=settings.photo_max_bytes, max_pixels=settings.photo_max_pixels
            ),
        )
    except photos.PhotoRefused as error:
        return _refusal(request, error)
    client_id = _client_id(request)
    report = await _damage_report(request, conversation.id)
    store = photos.PhotoStore(settings.photo_dir)
    key = await loop.run_in_executor(None, store.write, image)
    async with turn_lock(conversation.id):
        try:
            message, photo, order_number = await _store(
                request, conversation, image, key, report, client_id
            )
        except BaseException:
            store.remove([key])  # no row: no file
            raise
        if photo is None:  # the same upload again (a retry after a lost answer)
            store.remove([key])
            body: dict[str, Any] = {"message": message_frame(message), "duplicate": True}
            return web.json_response(body, headers=_cors(request))
        await announce(app, message)
        if order_number is not None:
            said = texts.render("utter_photo_added_to_report", order=order_number)
        else:
            said = texts.render("utter_photo_received")
        sender = (
            MessageSender.bot
            if conversations.bot_may_answer(conversation)
            else MessageSender.system
        )
        reply = await push(app, conversation.id, sender, said)
    body = {
        "message": message_frame(message),
        "reply": message_frame(reply),
        "photo": {"id": photo.id, "order_number": order_number},
        "duplicate": False,
    }
    return web.json_response(body, status=201, headers=_cors(request))


async def _store(
    request: web.Request,
    conversation: Conversation,
    image: photos.CleanImage,
    key: str,
    report: photos.Report | None,
    client_id: str | None,
) -> tuple[Message, Photo | None, str | None]:
    """The photo's row and its transcript line in one transaction. A client id stored
    before: that message, and no photo (the caller removes the new file)."""
    sessions = request.app[SESSIONS]
    caption = texts.render("utter_photo_caption")
    try:
        async with sessions() as session, session.begin():
            current = await session.get(Conversation, conversation.id)
            if current is None:
                raise photos.PhotoRefused("no_session", texts.render("utter_photo_no_chat"), 401)
            photo = await photos.add(session, current, image, key, report)
            message = await repositories.add_message(
                session,
                conversation.id,
                MessageSender.customer,
                caption,
                client_message_id=client_id,
            )
            message.photo_id = photo.id
            await session.flush()
            order_number = await photos.order_number(session, photo)
    except IntegrityError:
        if client_id is None:
            raise
        async with sessions() as session:
            existing = await repositories.message_by_client_id(session, conversation.id, client_id)
        if existing is None:
            raise
        return existing, None, None
    return message, photo, order_number


@require_roles(StaffRole.agent, StaffRole.admin, StaffRole.cx_manager)  # the console's viewers
async def staff_photo(request: web.Request) -> web.StreamResponse:
    """The image for staff who may read its conversation; 404 otherwise (as for an unknown
    id, so ids cannot be probed)."""
    try:
        photo_id = int(request.match_info["photo_id"])
    except ValueError as exc:
        raise web.HTTPNotFound(reason="Not found.") from exc
    async with request.config_dict[SESSIONS]() as session:
        photo = await session.get(Photo, photo_id)
    if photo is None or photo.erased_at is not None:
        raise web.HTTPNotFound(reason="Not found.")
    if not await may_read_conversation(request, photo.conversation_id):
        raise web.HTTPNotFound(reason="Not found.")
    store = photos.PhotoStore(request.config_dict[SETTINGS].photo_dir)
    data = await asyncio.get_running_loop().run_in_executor(None, store.read, photo.storage_key)
    if data is None:
        raise web.HTTPNotFound(reason="Not found.")
    return web.Response(
        body=data,
        content_type=photo.content_type,
        headers={
            "Cache-Control": "private, no-store",
            "Content-Disposition": f'inline; filename="photo-{photo.id}.{photo.storage_key.rsplit(".", 1)[-1]}"',
            # An image, never a document: no script runs even if one were opened directly.
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "X-Content-Type-Options": "nosniff",
        },
    )


def add_routes(app: web.Application) -> None:
    """The customer's upload (on the main app)."""
    app.router.add_post("/chat/photos", upload)
    app.router.add_route("OPTIONS", "/chat/photos", upload_preflight)


def add_console_routes(console: web.Application) -> None:
    console.router.add_get("/api/photos/{photo_id}", staff_photo)
