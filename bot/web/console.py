"""The staff console (sub-app at /console): queue, conversation view, live handoff,
history of resolved chats, canned responses.

Pages are static shells (bot/web/static/console/); every number and text comes from the
JSON API below, and live updates from the console WebSocket. Authentication, CSRF and
roles: bot/web/auth.py. Agents and admins work the queue; CX managers see the queue,
conversations and history read-only (issue #20); admins manage canned responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from bot.domain import escalations, handoff, inbox, photos, safe_json, views
from bot.domain.enums import MessageSender, StaffRole
from bot.domain.errors import NotFound
from bot.domain.staff import touch_presence
from bot.storage.models import Conversation, Customer, Order, StaffUser
from bot.web import knowledge_pages, pages, review
from bot.web.auth import (
    auth_middleware,
    current_staff,
    may_read_conversation,
    require_roles,
    setup_auth,
)
from bot.web.delivery import (
    AppState,
    announce,
    message_frame,
    push,
    push_replies,
    tell_status,
)
from bot.web.email_reply import agent_replied
from bot.web.errors import read_json_object
from bot.web.keys import HUB, RASA, SESSIONS, SETTINGS, STAFF_HUB
from bot.web.photos import add_console_routes as add_photo_routes
from bot.web.rasa_client import BotReply, RasaUnavailable

logger = logging.getLogger(__name__)

PAGES = Path(__file__).parent / "static" / "console"
AGENTS = (StaffRole.agent, StaffRole.admin)
# Who may look without acting (issue #20: a CX manager's "Console" link is not a dead end).
VIEWERS = (*AGENTS, StaffRole.cx_manager)
SUPPORT_RESOLVED_INTENT = "EXTERNAL_support_resolved"
# A console tab tells the customer "typing" at most this often (the widget hides the
# indicator after TYPING_HIDE_MS, 6 s, without a repeat: bot/web/static/widget.js).
TYPING_REPEAT_SECONDS = 2.0
# An open console page keeps its user's presence fresh through its live connection: one
# UPDATE of last_seen_at per user this often (well inside staff.PRESENCE_WINDOW, 60 s,
# which the customer's "team online" and the hand-over read). Closed, it goes stale.
PRESENCE_TOUCH_SECONDS = 20.0


def _page(name: str) -> web.Response:
    return pages.response(pages.CONSOLE, name)


@require_roles(*VIEWERS)
async def queue_page(_request: web.Request) -> web.Response:
    return _page("queue.html")


@require_roles(*VIEWERS)
async def conversation_page(_request: web.Request) -> web.Response:
    return _page("conversation.html")


@require_roles(*VIEWERS)
async def history_page(_request: web.Request) -> web.Response:
    return _page("history.html")


@require_roles(*VIEWERS, StaffRole.bot_trainer)
async def account_page(_request: web.Request) -> web.Response:
    """One's own sessions and two-factor sign-in (issue #22; API in bot/web/auth.py)."""
    return _page("account.html")


@require_roles(*AGENTS)
async def replies_page(_request: web.Request) -> web.Response:
    return _page("replies.html")


def _int(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError as exc:
        raise web.HTTPNotFound(reason="Not found.") from exc


@require_roles(*VIEWERS)
async def api_queue(request: web.Request) -> web.Response:
    async with request.config_dict[SESSIONS]() as session:
        items = await handoff.queue(
            session,
            current_staff(request),
            request.query.get("filter", "all"),
            aging_minutes=request.config_dict[SETTINGS].escalation_aging_minutes,
        )
        # A complaint flagged for follow-up is not a customer waiting for a person.
        await escalations.mark_follow_ups(session, items)
    return web.json_response({"items": items})


@require_roles(*VIEWERS)
async def api_conversation(request: web.Request) -> web.Response:
    conversation_id = request.match_info["conversation_id"]
    async with request.config_dict[SESSIONS]() as session:
        detail = await handoff.conversation_detail(session, conversation_id)
        # The customer's language when it was not English (issue #17, bot/web/language.py);
        # the conversation is already in the session, this reads no row.
        conversation = await session.get(Conversation, conversation_id)
        detail["conversation"]["language"] = conversation.language if conversation else None
        # The customer's photos (issue #19), for the customer panel: of all their chats, or
        # of this one when the customer is not known.
        detail["photos"] = await photos.panel(session, conversation) if conversation else []
        # What Resolve will do (the console's confirmation says it): survey or closing note.
        detail["conversation"]["survey_after_resolve"] = (
            await handoff.survey_after_resolve(
                session,
                conversation,
                request.config_dict[SETTINGS].transactional_survey_quiet_hours,
            )
            if conversation
            else False
        )
    # Whether the customer has the chat open (on this replica; live: customer_presence).
    detail["conversation"]["customer_online"] = (
        request.config_dict[HUB].connected(conversation_id) > 0
    )
    return web.json_response(detail)


@require_roles(*AGENTS)
async def api_staff(request: web.Request) -> web.Response:
    online = request.config_dict[STAFF_HUB].online_staff_ids()
    async with request.config_dict[SESSIONS]() as session:
        return web.json_response(await handoff.staff_directory(session, online))


async def _escalation_changed(request: web.Request, escalation: Any) -> dict[str, Any]:
    async with request.config_dict[SESSIONS]() as session:
        names = await views.staff_names(session)
        conversation = (
            await session.get(Conversation, escalation.conversation_id)
            if escalation.conversation_id
            else None
        )
    body = views.escalation_json(escalation, names)
    hub = request.config_dict[STAFF_HUB]
    await hub.queue_changed()
    if conversation is not None:
        await hub.conversation_event(conversation.id, {"type": "escalation", "escalation": body})
        # The customer's widget hears who has the chat now (its "Back to the assistant").
        await tell_status(request.config_dict, conversation.id, conversation.status)
    return body


async def _tell_who_joined(request: web.Request, escalation: Any) -> None:
    """Tell the customer which person now has the chat (SPEC §5): on a claim, whether they
    were waiting or talking to the bot (issue #17), and on a transfer, take-over or
    reopen (issue #20), so they know who answers."""
    if escalation.conversation_id is None or escalation.claimed_by_id is None:
        return
    async with request.config_dict[SESSIONS]() as session:
        holder = await session.get(StaffUser, escalation.claimed_by_id)
    if holder is not None:
        await push(
            request.config_dict,
            escalation.conversation_id,
            MessageSender.system,
            handoff.joined_note(holder),
        )


@require_roles(*AGENTS)
async def api_claim(request: web.Request) -> web.Response:
    staff = current_staff(request)
    async with request.config_dict[SESSIONS]() as session, session.begin():
        escalation = await handoff.claim(session, _int(request, "escalation_id"), staff)
    await pause_bot(request.config_dict, escalation.conversation_id)
    await _tell_who_joined(request, escalation)
    return web.json_response(await _escalation_changed(request, escalation))


@require_roles(*AGENTS)
async def api_transfer(request: web.Request) -> web.Response:
    """Transfer to a colleague; one who is not online is refused (409 agent_offline)
    unless the body says {"force": true} (the console asks first)."""
    data = await read_json_object(request)
    async with request.config_dict[SESSIONS]() as session, session.begin():
        escalation = await handoff.transfer(
            session,
            _int(request, "escalation_id"),
            current_staff(request),
            data.get("staff_user_id"),
            online_ids=request.config_dict[STAFF_HUB].online_staff_ids(),
            force=data.get("force") is True,
        )
    await pause_bot(request.config_dict, escalation.conversation_id)
    await _tell_who_joined(request, escalation)
    return web.json_response(await _escalation_changed(request, escalation))


@require_roles(*AGENTS)
async def api_release(request: web.Request) -> web.Response:
    async with request.config_dict[SESSIONS]() as session, session.begin():
        escalation = await handoff.release(
            session, _int(request, "escalation_id"), current_staff(request)
        )
    return web.json_response(await _escalation_changed(request, escalation))


@require_roles(*AGENTS)
async def api_take_over(request: web.Request) -> web.Response:
    """Take over a colleague's claim: admins always; agents when it is idle for
    CLAIM_IDLE_MINUTES or its holder is offline (409 claim_active otherwise)."""
    async with request.config_dict[SESSIONS]() as session, session.begin():
        escalation = await handoff.take_over(
            session,
            _int(request, "escalation_id"),
            current_staff(request),
            online_ids=request.config_dict[STAFF_HUB].online_staff_ids(),
            idle_minutes=request.config_dict[SETTINGS].claim_idle_minutes,
        )
    await pause_bot(request.config_dict, escalation.conversation_id)
    await _tell_who_joined(request, escalation)
    return web.json_response(await _escalation_changed(request, escalation))


@require_roles(*AGENTS)
async def api_reopen(request: web.Request) -> web.Response:
    async with request.config_dict[SESSIONS]() as session, session.begin():
        escalation = await handoff.reopen(
            session, _int(request, "escalation_id"), current_staff(request)
        )
    await pause_bot(request.config_dict, escalation.conversation_id)
    await _tell_who_joined(request, escalation)
    return web.json_response(await _escalation_changed(request, escalation))


@require_roles(*VIEWERS)
async def api_read(request: web.Request) -> web.Response:
    """The signed-in staff member has read the conversation up to {"message_id": n}
    (default: its latest message): its unread count drops for them."""
    data = await read_json_object(request)
    staff = current_staff(request)
    async with request.config_dict[SESSIONS]() as session, session.begin():
        marker = await inbox.mark_read(
            session, staff.id, request.match_info["conversation_id"], data.get("message_id")
        )
    return web.json_response({"last_read_message_id": marker})


@require_roles(*VIEWERS)
async def api_history(request: web.Request) -> web.Response:
    async with request.config_dict[SESSIONS]() as session:
        items = await inbox.history(
            session,
            current_staff(request),
            request.query.get("q", ""),
            request.query.get("from"),
            request.query.get("to"),
        )
    return web.json_response({"items": items})


async def _placeholder_values(session: Any, conversation_id: str) -> dict[str, str | None]:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound("No such conversation.")
    customer = (
        await session.get(Customer, conversation.customer_id) if conversation.customer_id else None
    )
    order = await session.get(Order, conversation.order_id) if conversation.order_id else None
    if order is None and customer is not None:
        order = await session.scalar(
            select(Order)
            .where(Order.customer_id == customer.id)
            .order_by(Order.placed_at.desc())
            .limit(1)
        )
    named = customer is not None and not customer.is_anonymous
    return {
        "customer_name": customer.name if named and customer is not None else None,
        "order_number": order.number if order is not None else None,
    }


@require_roles(*AGENTS)
async def api_canned(request: web.Request) -> web.Response:
    """Canned responses; with ?conversation_id= each also has `filled`, its text with the
    placeholders filled for that conversation (left as they are when unknown)."""
    conversation_id = request.query.get("conversation_id")
    async with request.config_dict[SESSIONS]() as session:
        items = await inbox.list_canned(session)
        if conversation_id:
            values = await _placeholder_values(session, conversation_id)
            for item in items:
                item["filled"] = inbox.fill_placeholders(item["text"], values)
    return web.json_response({"items": items})


@require_roles(StaffRole.admin)
async def api_canned_create(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    async with request.config_dict[SESSIONS]() as session, session.begin():
        canned = await inbox.save_canned(session, current_staff(request), data)
        body = inbox.canned_json(canned)
    return web.json_response(body, status=201)


@require_roles(StaffRole.admin)
async def api_canned_update(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    async with request.config_dict[SESSIONS]() as session, session.begin():
        canned = await inbox.save_canned(
            session, current_staff(request), data, _int(request, "canned_id")
        )
        body = inbox.canned_json(canned)
    return web.json_response(body)


@require_roles(StaffRole.admin)
async def api_canned_delete(request: web.Request) -> web.Response:
    async with request.config_dict[SESSIONS]() as session, session.begin():
        await inbox.delete_canned(session, current_staff(request), _int(request, "canned_id"))
    return web.Response(status=204)


async def pause_bot(app: AppState, conversation_id: str | None) -> None:
    """A person now has the chat: pause Rasa's tracker, so the bot stays silent even for a
    message that a tab relays before it hears of the hand-over (bot/web/chat.py). A chat
    the bot handed over is paused already (pausing twice is harmless); a negative-feedback
    follow-up claimed while the customer talks to the bot is not."""
    if conversation_id is None:
        return
    try:
        await app[RASA].append_events(conversation_id, [{"event": "pause"}])
    except RasaUnavailable as exc:
        # The claim stands; until Rasa is back the hand-over is kept by the chat's status.
        logger.warning("could not pause the bot in %s: %s", conversation_id, exc)


@require_roles(*AGENTS)
async def api_reply(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    conversation_id = request.match_info["conversation_id"]
    async with request.config_dict[SESSIONS]() as session, session.begin():
        message = await handoff.agent_reply(
            session, conversation_id, current_staff(request), data.get("text")
        )
    await announce(request.config_dict, message)
    agent_replied(request.config_dict, message)  # also by email when the customer left
    return web.json_response(message_frame(message), status=201)


@require_roles(*AGENTS)
async def api_note(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    conversation_id = request.match_info["conversation_id"]
    staff = current_staff(request)
    async with request.config_dict[SESSIONS]() as session, session.begin():
        note = await handoff.add_note(session, conversation_id, staff, data.get("text"))
        body = handoff.note_json(note, {staff.id: staff.display_name})
    await request.config_dict[STAFF_HUB].conversation_event(
        conversation_id, {"type": "note", "note": body}
    )
    return web.json_response(body, status=201)


@require_roles(*AGENTS)
async def api_resolve(request: web.Request) -> web.Response:
    async with request.config_dict[SESSIONS]() as session, session.begin():
        handback = await handoff.resolve(
            session, _int(request, "escalation_id"), current_staff(request)
        )
    body = await _escalation_changed(request, handback.escalation)
    # What the customer heard (the console says it): "survey", "closing", or None (no chat).
    handed_back = None
    if handback.conversation_id:
        handed_back = await hand_back_to_bot(request.config_dict, handback.conversation_id)
    return web.json_response({**body, "handed_back": handed_back})


async def hand_back_to_bot(app: AppState, conversation_id: str) -> str:
    """Resume Rasa's paused tracker and let the bot ask the post-support survey. When the
    bot says nothing (the transactional rule held the survey back: bot/domain/surveys.py)
    or cannot be reached, the customer is told the request is resolved, not left with
    silence. Returns "survey" or "closing"."""
    replies = await _trigger_support_resolved(app, conversation_id)
    if replies:
        await push_replies(app, conversation_id, replies)
        return "survey"
    await push(app, conversation_id, MessageSender.bot, handoff.closing_note())
    return "closing"


async def _trigger_support_resolved(app: AppState, conversation_id: str) -> list[BotReply]:
    rasa = app[RASA]
    try:
        # The pause left no action_listen behind the last action; the bot's rules start
        # from "listening", so record it before the external event.
        await rasa.append_events(
            conversation_id, [{"event": "resume"}, {"event": "action", "name": "action_listen"}]
        )
        replies = await rasa.trigger_intent(conversation_id, SUPPORT_RESOLVED_INTENT)
    except RasaUnavailable as exc:
        logger.warning("could not hand %s back to the bot: %s", conversation_id, exc)
        return []
    return [r for r in replies if r.text or r.buttons or r.cards]


@require_roles(*VIEWERS)
async def console_socket(request: web.Request) -> web.WebSocketResponse:
    # The console only sends small "watch" frames: refuse anything bigger (aiohttp's 4 MiB).
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096)
    await ws.prepare(request)
    hub = request.config_dict[STAFF_HUB]
    user = current_staff(request)
    hub.join(ws, user.id)
    typing = AgentTyping(request.config_dict, user)
    present = asyncio.create_task(_keep_present(request.config_dict, user.id))
    try:
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                continue
            try:
                data = safe_json.loads(frame.data)
            except safe_json.BadJson:
                continue
            if isinstance(data, dict) and data.get("type") == "watch":
                await typing.set(False)
                watched = data.get("conversation_id")
                # Live events only of conversations in the user's work (issue #22).
                if not isinstance(watched, str) or not await may_read_conversation(
                    request, watched
                ):
                    watched = None
                hub.watch(ws, watched)
                typing.conversation_id = watched
            elif isinstance(data, dict) and data.get("type") == "typing":
                await typing.set(data.get("on") is True)
    finally:
        present.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await present
        hub.leave(ws)
        await typing.set(False)
    return ws


async def _keep_present(app: AppState, staff_id: int) -> None:
    """While a console page is open its user is present (bot/domain/staff.py), not only
    when it loads: every PRESENCE_TOUCH_SECONDS, throttled per user over their tabs."""
    hub = app[STAFF_HUB]
    while True:
        await asyncio.sleep(PRESENCE_TOUCH_SECONDS)
        if not hub.presence_due(staff_id, time.monotonic(), PRESENCE_TOUCH_SECONDS * 0.9):
            continue
        try:
            async with app[SESSIONS]() as session, session.begin():
                await touch_presence(session, staff_id)
        except (SQLAlchemyError, OSError) as exc:  # the next period tries again
            logger.warning("could not refresh the presence of staff %s: %s", staff_id, exc)


class AgentTyping:
    """The agent typing indicator in the customer's chat (issue #20), for one console tab:
    only for the conversation the tab watches, only for agents and admins, and throttled:
    "on" reaches the customer at most every TYPING_REPEAT_SECONDS (the widget hides it
    after a few seconds without one), "off" once when it was on."""

    def __init__(self, app: AppState, staff: StaffUser) -> None:
        self.app = app
        self.staff = staff
        self.conversation_id: str | None = None
        self._on_sent_at: float | None = None

    async def set(self, on: bool) -> None:
        conversation_id = self.conversation_id
        if conversation_id is None or self.staff.role not in AGENTS:
            return
        now = time.monotonic()
        if on:
            if self._on_sent_at is not None and now - self._on_sent_at < TYPING_REPEAT_SECONDS:
                return
            self._on_sent_at = now
        elif self._on_sent_at is None:
            return
        else:
            self._on_sent_at = None
        frame = {"type": "typing", "on": on, "by": "agent", "name": self.staff.display_name}
        await self.app[HUB].send(conversation_id, frame)


def create_console() -> web.Application:
    console = web.Application(middlewares=[auth_middleware])
    setup_auth(console)
    console.router.add_get("/", queue_page)
    console.router.add_get("/conversations/{conversation_id}", conversation_page)
    console.router.add_get("/history", history_page)
    console.router.add_get("/replies", replies_page)
    console.router.add_get("/account", account_page)
    console.router.add_get("/api/queue", api_queue)
    console.router.add_get("/api/staff", api_staff)
    console.router.add_get("/api/conversations/{conversation_id}", api_conversation)
    console.router.add_post("/api/conversations/{conversation_id}/messages", api_reply)
    console.router.add_post("/api/conversations/{conversation_id}/notes", api_note)
    console.router.add_post("/api/conversations/{conversation_id}/read", api_read)
    console.router.add_get("/api/history", api_history)
    console.router.add_get("/api/canned", api_canned)
    console.router.add_post("/api/canned", api_canned_create)
    console.router.add_put("/api/canned/{canned_id}", api_canned_update)
    console.router.add_delete("/api/canned/{canned_id}", api_canned_delete)
    console.router.add_post("/api/escalations/{escalation_id}/claim", api_claim)
    console.router.add_post("/api/escalations/{escalation_id}/transfer", api_transfer)
    console.router.add_post("/api/escalations/{escalation_id}/resolve", api_resolve)
    console.router.add_post("/api/escalations/{escalation_id}/release", api_release)
    console.router.add_post("/api/escalations/{escalation_id}/takeover", api_take_over)
    console.router.add_post("/api/escalations/{escalation_id}/reopen", api_reopen)
    console.router.add_get("/ws", console_socket)
    review.add_routes(console)  # the bot's review inbox (issue #24)
    knowledge_pages.add_routes(console)  # the knowledge base (issue #19)
    add_photo_routes(console)  # customers' photos, for staff who may read the chat (#19)
    console.router.add_static("/static/", PAGES)
    return console
