"""Chat WebSocket: sessions, identity, transcript, de-duplication, rate limits, relay to Rasa.

Protocol (docs/widget.md): the client says `hello` (resume token, optional identity
token), then sends `message` frames with a client id; the server answers `session`,
`ack`, `message`, `typing` and `error` frames. Every text is stored before it is shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy.exc import IntegrityError

from bot.domain import (
    answer_ratings,
    conversations,
    escalations,
    photos,
    review_inbox,
    safe_json,
    staff,
    texts,
)
from bot.domain.enums import ConversationStatus, MessageSender
from bot.domain.errors import DomainError
from bot.domain.identity import check_token, problem_message
from bot.domain.turn_review import Rules
from bot.storage import repositories
from bot.storage.db import STORAGE_ERRORS
from bot.storage.models import Conversation, Message
from bot.web import language
from bot.web.auth import is_same_origin
from bot.web.client_limits import (
    CLIENT_LIMITS,
    CONVERSATIONS,
    SOCKETS,
    TOO_MANY_CONVERSATIONS,
    TOO_MANY_SOCKETS,
)
from bot.web.delivery import (
    AppState,
    announce,
    message_frame,
    push,
    push_replies,
    tell_status,
    turn_lock,
)
from bot.web.insight_notices import deliver_insight_notices
from bot.web.keys import HUB, RASA, SESSIONS, SETTINGS, STAFF_HUB
from bot.web.ops import conversation_id_var, count_error
from bot.web.proactive import offer_pending_survey
from bot.web.rasa_client import BotReply, RasaUnavailable

logger = logging.getLogger(__name__)

BACK_TO_BOT_BUTTON = {"title": "Back to the assistant", "payload": escalations.BACK_TO_BOT_PAYLOAD}
RATE_LIMITED = "You're sending messages very quickly. Please wait a few seconds and try again."
MAX_FRAME_BYTES = 64 * 1024
MAX_CLIENT_ID_CHARS = 64
MAX_DISPLAY_CHARS = 200
MAX_HELLOS = 3  # per WebSocket connection


def retry_later() -> str:
    """Said when the bot (Rasa) or the database cannot answer a message."""
    return texts.render("utter_web_retry_later")


def waiting_note() -> str:
    """Said once when a message waits for a person (escalations.waiting_note_due)."""
    return texts.render("utter_web_waiting_note")


def back_with_bot() -> str:
    """Said when a customer waiting for a person goes back to the bot."""
    return texts.render("utter_web_back_with_bot")


def _error(
    code: str, message: str, client_id: str | None = None, *, reconnect: bool = False
) -> dict[str, Any]:
    """An `error` frame. `reconnect`: the hello was refused, so this socket has no session
    and never will; the client shows `message`, stops sending and offers to reconnect."""
    frame: dict[str, Any] = {"type": "error", "error": {"code": code, "message": message}}
    if client_id is not None:
        frame["client_id"] = client_id
    if reconnect:
        frame["reconnect"] = True
    return frame


def _origin_allowed(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser; browsers always send Origin on WebSocket upgrades
    # Scheme, host and port (bot/web/auth.py): `ftp://` + our host is not us (#22).
    return is_same_origin(request, origin) or origin in request.app[SETTINGS].allowed_origins


@dataclass
class Connection:
    request: web.Request
    ws: web.WebSocketResponse
    conversation_id: str | None = None
    identity_to_sync: bool = False
    hellos: int = 0
    # The conversation as this tab last saw it (hello, then after every bot turn).
    bot_answers: bool = True
    customer_id: int | None = None
    # The buttons of the bot's last answer to this tab, until the customer's next message:
    # a title typed instead of tapped is that button (kept here, off the database).
    buttons_on_screen: list[dict[str, str]] = field(default_factory=list)


async def chat_socket(request: web.Request) -> web.WebSocketResponse:
    if not _origin_allowed(request):
        raise web.HTTPForbidden(
            text=json.dumps(_error("forbidden_origin", "This site may not open the chat.")),
            content_type="application/json",
        )
    limits = request.app[CLIENT_LIMITS]  # per client address (issue #22)
    if not await limits.allow(SOCKETS, limits.address(request)):
        raise web.HTTPTooManyRequests(
            text=json.dumps(_error("rate_limited", TOO_MANY_SOCKETS)),
            content_type="application/json",
        )
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_FRAME_BYTES)
    await ws.prepare(request)
    connection = Connection(request, ws)
    try:
        async for frame in ws:
            if frame.type is WSMsgType.TEXT:
                conversation_id_var.set(connection.conversation_id)  # on every log line
                try:
                    await _handle(connection, frame.data)
                except STORAGE_ERRORS as exc:
                    # Database outage: nothing half-done is shown; the customer retries.
                    logger.warning("storage unavailable: %s", exc)
                    count_error(request.app, "storage_unavailable")
                    with contextlib.suppress(ConnectionError, RuntimeError):  # customer left
                        await ws.send_json(_error("unavailable", retry_later()))
    finally:
        if connection.conversation_id is not None:
            request.app[HUB].leave(connection.conversation_id, ws)
            await customer_presence(request.app, connection.conversation_id)
    return ws


async def customer_presence(app: AppState, conversation_id: str) -> None:
    """Tell the consoles showing this chat whether the customer has it open (issue #20:
    "customer left / came back"); counted on this replica."""
    await app[STAFF_HUB].conversation_event(
        conversation_id,
        {"type": "customer_presence", "online": app[HUB].connected(conversation_id) > 0},
    )


async def _handle(connection: Connection, raw: str) -> None:
    ws = connection.ws
    try:
        data = safe_json.loads(raw)
    except safe_json.BadJson as exc:  # the socket stays open
        await ws.send_json(_error(exc.code, exc.message))
        return
    if not isinstance(data, dict):
        await ws.send_json(_error("bad_request", "Messages must be JSON objects."))
    elif data.get("type") == "hello":
        connection.hellos += 1
        if connection.hellos > MAX_HELLOS:
            # Our clients say hello once per connection; each hello may create a
            # conversation, so a loop of them is refused.
            await ws.send_json(_error("too_many_hellos", "Reconnect to start again."))
            await ws.close()
            return
        await _hello(connection, data.get("token"), data.get("identity"))
    elif connection.conversation_id is None:
        await ws.send_json(_error("no_session", "Say hello first."))
    elif data.get("type") == "message":
        await _customer_message(
            connection, data.get("text"), data.get("client_id"), data.get("display")
        )
    elif data.get("type") == "rate":
        await _rate_answer(connection, data.get("message_id"), data.get("helpful"))
    else:
        await ws.send_json(_error("bad_request", "Unknown message type."))


class _LimitReached(Exception):
    """The client's address may not start another conversation now."""


async def _hello(connection: Connection, token: Any, identity: Any) -> None:
    app = connection.request.app
    claims = None
    if isinstance(identity, str) and identity:
        settings = app[SETTINGS]
        check = check_token(
            settings.widget_secret,
            identity,
            max_lifetime_seconds=settings.identity_max_lifetime_seconds,
        )
        claims = check.claims
        if check.problem is not None:
            await connection.ws.send_json(_error("identity_refused", check.message))
    limits = app[CLIENT_LIMITS]
    try:
        async with app[SESSIONS]() as session, session.begin():
            chat = await conversations.start_or_resume(
                session,
                token if isinstance(token, str) else None,
                claims,
                link_secret=app[SETTINGS].widget_secret,  # resume links in email replies
            )
            # A new conversation (a new resume token) counts against the client's address;
            # past the limit it is rolled back (issue #22).
            new = chat.token != token
            if new and not await limits.allow(CONVERSATIONS, limits.address(connection.request)):
                raise _LimitReached
    except _LimitReached:
        await connection.ws.send_json(
            _error("rate_limited", TOO_MANY_CONVERSATIONS, reconnect=True)
        )
        return
    if chat.identity_problem is not None:  # a single-use token used again
        await connection.ws.send_json(
            _error("identity_refused", problem_message(chat.identity_problem))
        )
    if connection.conversation_id is not None:
        app[HUB].leave(connection.conversation_id, connection.ws)
    connection.conversation_id = chat.conversation.id
    conversation_id_var.set(chat.conversation.id)
    connection.identity_to_sync = chat.conversation.identified_by == conversations.BY_TOKEN
    connection.bot_answers = conversations.bot_may_answer(chat.conversation)
    connection.customer_id = chat.conversation.customer_id
    app[HUB].join(chat.conversation.id, connection.ws)
    if app[HUB].connected(chat.conversation.id) == 1:  # the customer came (back)
        await customer_presence(app, chat.conversation.id)
    await connection.ws.send_json(
        {
            "type": "session",
            "token": chat.token,
            "status": chat.conversation.status.value,
            "identity": "verified" if chat.verified else "anonymous",
            "customer_name": chat.customer.name if chat.verified and chat.customer else None,
            "history": [message_frame(m) for m in chat.history],
            "team": await _team(app),
            # The quick replies under the widget's own greeting: the greeting's in domain.yml.
            "menu": texts.buttons("utter_greet"),
            # What the widget checks before uploading a photo (issue #19, bot/web/photos.py).
            "photos": photos.client_rules(app[SETTINGS].photo_max_bytes),
        }
    )
    if chat.verified:
        await _offer_survey(app, chat.conversation.id)


async def _team(app: AppState) -> dict[str, Any]:
    """For the widget's header (issue #20): whether a person of the support team (agent or
    admin) has the console open (seen in the last minute), and the team's hours."""
    async with app[SESSIONS]() as session:
        online = bool(await staff.online_staff(session))
    return {"online": online, "hours": app[SETTINGS].support_hours}


async def _offer_survey(app: AppState, conversation_id: str) -> None:
    """A survey scheduled by the shop's events waits for this customer: ask it now."""
    await deliver_insight_notices(app, conversation_id)  # "we changed Y" first
    await offer_pending_survey(app, conversation_id)


def _valid_client_id(client_id: Any) -> str | None:
    if isinstance(client_id, str) and 0 < len(client_id) <= MAX_CLIENT_ID_CHARS:
        return client_id
    return None


@dataclass
class StoredMessage:
    message: Message
    is_new: bool  # False: a re-sent client id, stored once
    # As it was when the message was stored; not read when the bot was asked early.
    conversation: Conversation | None
    bot_reply: asyncio.Task[list[BotReply] | None] | None = None  # the bot, asked early


AskBot = Callable[[], Coroutine[Any, Any, list[BotReply] | None]]


async def _store_customer_message(
    connection: Connection, text: str, client_id: str | None, ask_bot: AskBot | None = None
) -> StoredMessage:
    """Store the message (and read its conversation) in one transaction.

    With `ask_bot` the bot is asked as soon as the INSERT has passed the de-duplication
    index, and the transaction commits while the bot works: a re-sent message never
    reaches the bot twice, and the transaction is off the turn's critical path. The
    conversation is then not read: the bot itself is the gate (see `_answer`).
    """
    conversation_id = connection.conversation_id
    assert conversation_id is not None
    sessions = connection.request.app[SESSIONS]
    bot_reply: asyncio.Task[list[BotReply] | None] | None = None
    try:
        async with sessions() as session, session.begin():
            message = await repositories.add_message(
                session,
                conversation_id,
                MessageSender.customer,
                text,
                client_message_id=client_id,
            )
            if ask_bot is not None:
                bot_reply = asyncio.create_task(ask_bot())
                conversation = None
            else:
                conversation = await session.get(Conversation, conversation_id)
    except IntegrityError:  # this client id was stored before (a re-send, or another tab)
        if client_id is None or bot_reply is not None:
            _discard(bot_reply)
            raise
        async with sessions() as session:
            existing = await repositories.message_by_client_id(session, conversation_id, client_id)
        if existing is None:
            raise
        return StoredMessage(existing, False, None)
    except BaseException:
        _discard(bot_reply)  # not stored: its answer must not be shown
        raise
    return StoredMessage(message, True, conversation, bot_reply)


def _discard(task: asyncio.Task[Any] | None) -> None:
    if task is not None:
        task.cancel()
        task.add_done_callback(lambda done: done.cancelled() or done.exception())


async def _customer_message(
    connection: Connection, text: Any, client_id: Any, display: Any = None
) -> None:
    """`text` goes to the bot; `display` (a quick reply's title) is what the transcript shows."""
    app, ws = connection.request.app, connection.ws
    conversation_id = connection.conversation_id
    assert conversation_id is not None
    settings = app[SETTINGS]
    client_id = _valid_client_id(client_id)
    if not isinstance(text, str) or not text.strip():
        await ws.send_json(_error("empty_message", "Please type a message.", client_id))
        return
    if len(text) > settings.max_message_chars:
        await ws.send_json(
            _error(
                "message_too_long",
                f"Messages are limited to {settings.max_message_chars} characters; please shorten it.",
                client_id,
            )
        )
        return
    if not app[HUB].allow(
        conversation_id, settings.rate_limit_messages, settings.rate_window_seconds
    ):
        await ws.send_json(_error("rate_limited", RATE_LIMITED, client_id))
        return
    text = text.strip()
    on_screen, connection.buttons_on_screen = connection.buttons_on_screen, []
    if display is None:
        chosen = _button_typed(on_screen, text)
        if chosen is not None:
            # "changed my mind" typed instead of tapping the button of that title (tester
            # 3: read as a no): the button's payload goes to the bot, the words are shown
            display, text = text, chosen
    button_payload = await _is_offered_payload(app, conversation_id, text)
    shown = (
        display.strip()
        if isinstance(display, str) and 0 < len(display.strip()) <= MAX_DISPLAY_CHARS
        else None
    )
    # While this tab last saw the bot answering, the bot is asked while the message is
    # stored. Every hand-over to a person pauses Rasa's tracker (the handoff action, or the
    # console's claim), so a chat handed over meanwhile gets no bot reply from it.
    ask_bot: AskBot | None = (
        functools.partial(_ask_bot, connection, text, button_payload)
        if connection.bot_answers
        else None
    )
    # Other languages (issue #17, bot/web/language.py): a message clearly not in English
    # goes to Rasa as EXTERNAL_other_language (never as text to the NLU) and tags the chat.
    if ask_bot is not None and not button_payload:
        ask_bot = language.route(connection, text, ask_bot)
    async with turn_lock(conversation_id):
        stored = await _store_customer_message(connection, shown or text, client_id, ask_bot)
        message = stored.message
        await ws.send_json(
            {
                "type": "ack",
                "client_id": client_id,
                "id": message.id,
                "duplicate": not stored.is_new,
            }
        )
        if not stored.is_new:
            return
        await announce(app, message, exclude=ws)
        answered = await _answer(connection, text, stored, button_payload)
    if answered:
        await _after_bot_turn(connection)


# Longer than any button title: not looked up.
_MAX_TYPED_TITLE = 60


def _title_words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _button_typed(buttons: list[dict[str, str]], text: str) -> str | None:
    """The payload of the button on screen whose title the customer typed (any case or
    punctuation), if any."""
    if len(text) > _MAX_TYPED_TITLE or not _title_words(text):
        return None
    typed = _title_words(text)
    return next(
        (
            b["payload"]
            for b in buttons
            if b.get("title") and b.get("payload") and _title_words(b["title"]) == typed
        ),
        None,
    )


async def _is_offered_payload(app: AppState, conversation_id: str, text: str) -> bool:
    """Whether `text` is the payload of a button the bot offered in this conversation: only
    then may Rasa read its `/intent{entities}` syntax (issue #16). Rasa's channel passes any
    other text starting with `/` to NLU as text; text without a leading `/` means the same
    either way, so only that is looked up (off the hot path of ordinary messages)."""
    if not text.startswith("/"):
        return False
    async with app[SESSIONS]() as session:
        return await repositories.offered_payload(session, conversation_id, text)


async def _ask_bot(
    connection: Connection, text: str, button_payload: bool = False
) -> list[BotReply] | None:
    """The bot's replies to a customer's message; None when Rasa or the actions are down."""
    app, conversation_id = connection.request.app, connection.conversation_id
    assert conversation_id is not None
    rasa = app[RASA]
    try:
        if connection.identity_to_sync:
            # The shop vouched for this customer: Rasa skips the order + email check.
            await rasa.set_slots(conversation_id, {"identity": "verified"})
            connection.identity_to_sync = False
        return await rasa.send(conversation_id, text, button_payload)
    except RasaUnavailable as exc:
        logger.warning("rasa unavailable for %s: %s", conversation_id, exc)
        return None


async def _typing_while(
    app: AppState, conversation_id: str, reply: Awaitable[list[BotReply] | None]
) -> list[BotReply] | None:
    """The typing indicator (after the customer's message was acknowledged) until the bot
    has answered."""
    hub = app[HUB]
    await hub.send(conversation_id, {"type": "typing", "on": True})
    try:
        return await reply
    finally:
        await hub.send(conversation_id, {"type": "typing", "on": False})


async def _answer(
    connection: Connection, text: str, stored: StoredMessage, button_payload: bool = False
) -> bool:
    """Answer a stored customer message (inside the turn lock); whether the bot answered."""
    app = connection.request.app
    conversation_id = stored.message.conversation_id
    bot_reply: Awaitable[list[BotReply] | None] | None = stored.bot_reply
    if bot_reply is None:  # this tab knew of a hand-over: is it over?
        conversation = stored.conversation
        if conversation is None or not conversations.bot_may_answer(conversation):
            return await _person_has_it(connection, text)
        bot_reply = _ask_bot(connection, text, button_payload)
    replies = await _typing_while(app, conversation_id, bot_reply)
    if replies is None:
        await push(app, conversation_id, MessageSender.system, retry_later())
        return False
    if replies:
        # Even after a hand-over this tab had not heard of: the bot's tracker was not
        # paused yet, its actions ran, and what they did is shown rather than hidden.
        answers = await push_replies(app, conversation_id, replies)
        connection.buttons_on_screen = [b for reply in replies for b in reply.buttons]
        await _remember_understanding(app, stored.message, replies)
        await _ask_if_helpful(app, conversation_id, answers, replies)
        if "@" in text:  # a request queued while the bot helps: the contact for the team
            await _note_contact(app, conversation_id, text)
        return True
    # No reply: a paused bot (a person has the chat, this tab had not heard of it), or a
    # turn without words.
    async with app[SESSIONS]() as session:
        conversation = await session.get(Conversation, conversation_id)
    if conversation is not None and not conversations.bot_may_answer(conversation):
        connection.bot_answers = False
        return await _person_has_it(connection, text)
    return True


async def _remember_understanding(app: AppState, message: Message, replies: list[BotReply]) -> None:
    """What the NLU made of the message, for the review inbox (issue #24): stored after
    the replies were shown; a failure loses only that."""
    nlu = getattr(replies, "nlu", None)
    if not isinstance(nlu, dict):
        return
    try:
        async with app[SESSIONS]() as session, session.begin():
            await review_inbox.record_turn(
                session,
                message,
                nlu,
                [r.buttons for r in replies],
                Rules(rephrase_similarity=app[SETTINGS].review_rephrase_similarity),
            )
    except Exception:
        logger.exception("could not store the NLU result of message %s", message.id)


async def _ask_if_helpful(
    app: AppState, conversation_id: str, answers: list[Message], replies: list[BotReply]
) -> None:
    """After a knowledge answer, the customer's tabs offer "did this help?" under its last
    reply (issue #24, bot/domain/answer_ratings.py)."""
    nlu = getattr(replies, "nlu", None)
    steps = nlu.get("steps") if isinstance(nlu, dict) else None
    if answers and isinstance(steps, list) and answer_ratings.is_knowledge_answer(steps):
        await app[HUB].send(conversation_id, {"type": "ask_helpful", "message_id": answers[-1].id})


async def _rate_answer(connection: Connection, message_id: Any, helpful: Any) -> None:
    """The customer's yes/no on an answer of their conversation; `rated` to this tab."""
    ws, conversation_id = connection.ws, connection.conversation_id
    if conversation_id is None or not isinstance(message_id, int) or isinstance(message_id, bool):
        await ws.send_json(_error("bad_request", "Which answer?"))
        return
    if not isinstance(helpful, bool):
        await ws.send_json(_error("bad_request", "helpful must be true or false."))
        return
    try:
        async with connection.request.app[SESSIONS]() as session, session.begin():
            await answer_ratings.rate(session, conversation_id, message_id, helpful)
    except DomainError as exc:
        await ws.send_json(_error(exc.code, exc.message))
        return
    await ws.send_json({"type": "rated", "message_id": message_id, "helpful": helpful})


async def _person_has_it(connection: Connection, text: str) -> bool:
    """A message while a person has (or is about to take) the chat: a customer still
    waiting may go back to the bot (issue #17); otherwise it waits for the person.
    Whether the bot answered."""
    app, conversation_id = connection.request.app, connection.conversation_id
    assert conversation_id is not None
    if escalations.wants_the_bot(text):
        async with app[SESSIONS]() as session, session.begin():
            conversation = await session.get(Conversation, conversation_id)
            back = conversation is not None and await escalations.back_to_bot(session, conversation)
        if back:
            await _resume_bot(app, conversation_id)
            connection.bot_answers = True
            await tell_status(app, conversation_id, ConversationStatus.bot)
            await push(app, conversation_id, MessageSender.bot, back_with_bot())
            await app[STAFF_HUB].queue_changed()  # marked "customer back with the bot"
            return True
    await _note_for_person(app, conversation_id, text)
    return False


async def _resume_bot(app: AppState, conversation_id: str) -> None:
    """The hand-over paused Rasa's tracker; the bot's rules start from listening."""
    try:
        await app[RASA].append_events(
            conversation_id, [{"event": "resume"}, {"event": "action", "name": "action_listen"}]
        )
    except RasaUnavailable as exc:  # the chat is the bot's; its next turn says if Rasa is down
        logger.warning("could not resume the bot in %s: %s", conversation_id, exc)


async def _note_for_person(app: AppState, conversation_id: str, text: str) -> None:
    """While the chat waits for a person: tell the customer, once, that their messages wait
    for them, and offer the way back to the bot. Once a person has joined (they were told
    "… has joined the chat"), the customer is talking to them: no note."""
    async with app[SESSIONS]() as session, session.begin():
        email = await escalations.remember_contact_email(session, conversation_id, text)
        conversation = await session.get(Conversation, conversation_id)
        waiting = (
            conversation is not None and conversation.status is ConversationStatus.waiting_for_agent
        )
        due = (
            email is None
            and waiting
            and await escalations.waiting_note_due(session, conversation_id, waiting_note())
        )
    if email:
        await push(
            app,
            conversation_id,
            MessageSender.system,
            texts.render("utter_web_contact_noted", email=email),
        )
    elif due:
        await push(app, conversation_id, MessageSender.system, waiting_note(), [BACK_TO_BOT_BUTTON])


async def _note_contact(app: AppState, conversation_id: str, text: str) -> None:
    async with app[SESSIONS]() as session, session.begin():
        email = await escalations.remember_contact_email(
            session, conversation_id, text, queued_only=True
        )
    if email:
        await push(
            app,
            conversation_id,
            MessageSender.system,
            texts.render("utter_web_contact_noted", email=email),
        )


async def _after_bot_turn(connection: Connection) -> None:
    """What the bot's actions did to the conversation (after the replies were shown: off
    the turn's critical path): handed it to a person, or verified the customer."""
    app, conversation_id = connection.request.app, connection.conversation_id
    assert conversation_id is not None
    async with app[SESSIONS]() as session:
        after = await session.get(Conversation, conversation_id)
    if after is None:
        return
    verified_now = after.customer_id is not None and connection.customer_id is None
    connection.bot_answers = conversations.bot_may_answer(after)
    connection.customer_id = after.customer_id
    if not connection.bot_answers:
        await app[STAFF_HUB].queue_changed()  # the bot just handed this chat to a person
    elif verified_now:
        await _offer_survey(app, conversation_id)  # just verified by order number + email
