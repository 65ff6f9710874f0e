"""Console API over HTTP: roles, CSRF, claim, live reply to the widget, resolve and hand back."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import escalations, staff
from bot.domain.enums import ConversationStatus, EscalationReason, StaffRole
from bot.storage.models import Conversation, Message
from tests.conftest import StubRasa
from tests.test_web_chat import _open, _quiet_turn, _turn

PASSWORD = "long-enough-pw"


async def _login(client: TestClient[web.Request, web.Application], email: str) -> dict[str, Any]:
    response = await client.post(
        "/console/api/login",
        json={"email": email, "password": PASSWORD},
        headers={"X-Requested-With": "console"},
    )
    assert response.status == 200
    me: dict[str, Any] = await response.json()
    return me


async def _setup(session_factory: Any) -> None:
    async with session_factory() as db, db.begin():
        await staff.create_user(db, "sam@example.com", "Sam (support)", StaffRole.agent, PASSWORD)
        await staff.create_user(db, "cx@example.com", "Chris (CX)", StaffRole.cx_manager, PASSWORD)


async def _escalate(session_factory: Any, conversation_id: str) -> None:
    async with session_factory() as db, db.begin():
        conversation = await db.get(Conversation, conversation_id)
        await escalations.escalate(db, conversation, EscalationReason.customer_request)


async def _escalated_chat(
    client: TestClient[web.Request, web.Application], rasa: Any, session_factory: Any
) -> tuple[Any, str, dict[str, Any], int]:
    """A chat the bot handed to a person, and Sam (an agent) signed in to the console."""
    await _setup(session_factory)
    ws, _ = await _open(client)
    await _turn(ws, "hi")
    conversation_id: str = rasa[0].received[0]["sender"]
    await _escalate(session_factory, conversation_id)
    me = await _login(client, "sam@example.com")
    return ws, conversation_id, me, await _first_in_queue(client)


async def _first_in_queue(client: TestClient[web.Request, web.Application]) -> int:
    queue = await (await client.get("/console/api/queue")).json()
    escalation_id: int = queue["items"][0]["escalation_id"]
    return escalation_id


async def test_anonymous_and_wrong_roles_are_refused(
    client: TestClient[web.Request, web.Application],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await _setup(session_factory)
    assert (await client.get("/console/api/queue")).status == 401
    page = await client.get("/console/", allow_redirects=False)
    assert (page.status, page.headers["Location"]) == (302, "/console/login")

    # A CX manager reads the queue (issue #20: not a dead end) but may not act on it.
    me = await _login(client, "cx@example.com")
    assert (await client.get("/console/api/queue")).status == 200
    response = await client.post(
        "/console/api/escalations/1/claim", headers={"X-CSRF-Token": me["csrf_token"]}
    )
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "forbidden"


async def test_claim_needs_the_csrf_token(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    ws, _, me, escalation_id = await _escalated_chat(client, rasa, session_factory)

    refused = await client.post(f"/console/api/escalations/{escalation_id}/claim")
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "csrf_failed"
    claimed = await client.post(
        f"/console/api/escalations/{escalation_id}/claim",
        headers={"X-CSRF-Token": me["csrf_token"]},
    )
    assert (
        claimed.status == 200
        and (await claimed.json())["claimed_by"]["display_name"] == "Sam (support)"
    )
    again = await client.post(
        f"/console/api/escalations/{escalation_id}/claim",
        headers={"X-CSRF-Token": me["csrf_token"]},
    )
    assert again.status == 409
    assert (await again.json())["error"] == {
        "code": "already_claimed",
        "message": "This conversation was already claimed by Sam (support).",
    }
    await ws.close()


async def test_agent_reply_reaches_the_widget_bot_stays_silent_and_resolve_hands_back(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    ws, conversation_id, me, escalation_id = await _escalated_chat(client, rasa, session_factory)
    headers = {"X-CSRF-Token": me["csrf_token"]}
    await client.post(f"/console/api/escalations/{escalation_id}/claim", headers=headers)
    # The waiting customer is told who joined (issue #20), not only one back with the bot.
    joined = await ws.receive_json(timeout=5)
    assert (joined["sender"], joined["text"]) == (
        "system",
        "Sam (support) from our team has joined the chat and will reply here.",
    )
    # ... and the widget hears the chat changed hands (it drops "Back to the assistant").
    assert await ws.receive_json(timeout=5) == {"type": "status", "status": "with_agent"}

    sent = await client.post(
        f"/console/api/conversations/{conversation_id}/messages",
        json={"text": "Hi, Sam here"},
        headers=headers,
    )
    assert sent.status == 201
    live = await ws.receive_json(timeout=5)
    assert (live["sender"], live["text"], live["author"]) == (
        "agent",
        "Hi, Sam here",
        "Sam (support)",
    )

    frames = await _quiet_turn(ws, "thanks!")
    # Sam has joined and is talking: no "a person will reply here" note (issue #17).
    assert [(f["sender"], f["text"]) for f in frames if f["type"] == "message"] == []
    # The claim paused the bot: the tab, which had not heard of the hand-over, asked it
    # and it answered nothing.
    assert rasa[0].slot_events[0] == (conversation_id, [{"event": "pause"}])
    assert len(rasa[0].received) == 2

    resolved = await client.post(
        f"/console/api/escalations/{escalation_id}/resolve", headers=headers
    )
    assert resolved.status == 200
    assert rasa[0].slot_events[-1] == (
        conversation_id,
        [{"event": "resume"}, {"event": "action", "name": "action_listen"}],
    )
    assert rasa[0].triggered == [(conversation_id, "EXTERNAL_support_resolved")]
    assert await ws.receive_json(timeout=5) == {"type": "status", "status": "bot"}
    survey = await ws.receive_json(timeout=5)
    assert (survey["sender"], survey["text"]) == ("bot", "How satisfied are you?")
    async with session_factory() as db:
        conversation = await db.get_one(Conversation, conversation_id)
        assert conversation.status is ConversationStatus.bot
        senders = [
            m.sender.value for m in (await db.scalars(select(Message).order_by(Message.id))).all()
        ]
    assert senders == ["customer", "bot", "system", "agent", "customer", "bot"]
    await ws.close()


async def test_claiming_a_follow_up_while_the_bot_answers_pauses_the_bot(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """A negative-feedback follow-up is queued while the customer goes on talking to the
    bot (the chat stays with the bot); claiming it hands the chat over, so Rasa must stop
    answering too, even for a message the tab relays before it hears of the claim."""
    await _setup(session_factory)
    ws, _ = await _open(client)
    await _turn(ws, "hi")
    conversation_id = rasa[0].received[0]["sender"]
    async with session_factory() as db, db.begin():
        conversation = await db.get_one(Conversation, conversation_id)
        await escalations.escalate(
            db, conversation, EscalationReason.negative_feedback, hand_over_now=False
        )
    me = await _login(client, "sam@example.com")
    escalation_id = await _first_in_queue(client)

    claimed = await client.post(
        f"/console/api/escalations/{escalation_id}/claim",
        headers={"X-CSRF-Token": me["csrf_token"]},
    )

    assert claimed.status == 200
    assert rasa[0].slot_events == [(conversation_id, [{"event": "pause"}])]
    # The customer was talking to the bot: told that a person took over (SPEC §5).
    joined = await ws.receive_json(timeout=5)
    assert (joined["sender"], joined["text"]) == (
        "system",
        "Sam (support) from our team has joined the chat and will reply here.",
    )
    frames = await _quiet_turn(ws, "still there?")
    assert [(f["sender"], f["text"]) for f in frames if f["type"] == "message"] == []
    async with session_factory() as db:
        conversation = await db.get_one(Conversation, conversation_id)
    assert conversation.status is ConversationStatus.with_agent
    await ws.close()


async def test_a_customer_back_with_the_bot_stays_queued_marked_and_a_claim_takes_over(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    ws, conversation_id, me, escalation_id = await _escalated_chat(client, rasa, session_factory)
    rasa[0].pause(conversation_id)
    frames = await _turn(ws, "i want to talk to the bot again")
    assert frames[-1]["sender"] == "bot" and frames[-1]["text"].startswith("Okay, I'm back!")

    queue = await (await client.get("/console/api/queue")).json()
    assert [(i["escalation_id"], i["status"], i["back_with_bot"]) for i in queue["items"]] == [
        (escalation_id, "waiting", True)
    ]
    claimed = await client.post(
        f"/console/api/escalations/{escalation_id}/claim",
        headers={"X-CSRF-Token": me["csrf_token"]},
    )

    assert claimed.status == 200 and (await claimed.json())["back_with_bot"] is False
    joined = await ws.receive_json(timeout=5)
    assert (joined["sender"], joined["text"]) == (
        "system",
        "Sam (support) from our team has joined the chat and will reply here.",
    )
    assert rasa[0].slot_events[-1] == (conversation_id, [{"event": "pause"}])
    async with session_factory() as db:
        conversation = await db.get_one(Conversation, conversation_id)
    assert conversation.status is ConversationStatus.with_agent
    await ws.close()


async def test_a_claim_stands_when_rasa_cannot_be_paused(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    ws, conversation_id, me, escalation_id = await _escalated_chat(client, rasa, session_factory)
    rasa[0].fail = True

    claimed = await client.post(
        f"/console/api/escalations/{escalation_id}/claim",
        headers={"X-CSRF-Token": me["csrf_token"]},
    )

    assert claimed.status == 200
    assert (await claimed.json())["status"] == "claimed"
    assert rasa[0].slot_events == []
    async with session_factory() as db:
        conversation = await db.get_one(Conversation, conversation_id)
    assert conversation.status is ConversationStatus.with_agent
    await ws.close()


async def test_a_complaint_flagged_for_follow_up_is_not_a_customer_waiting(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Tester 5 (c30): an angry complaint opens a negative_feedback escalation while the
    customer stays with the bot; they never said yes to the offered person. The queue shows
    it as a follow-up, not as a customer waiting; once they say yes (the chat is handed
    over) it is a waiting customer like any other."""
    await _setup(session_factory)
    ws, _ = await _open(client)
    await _turn(ws, "hi")
    conversation_id = rasa[0].received[0]["sender"]
    async with session_factory() as db, db.begin():
        conversation = await db.get_one(Conversation, conversation_id)
        await escalations.escalate(
            db, conversation, EscalationReason.negative_feedback, hand_over_now=False
        )
    await _login(client, "sam@example.com")

    queue = await (await client.get("/console/api/queue")).json()
    assert [(i["reason"], i["status"], i["follow_up"]) for i in queue["items"]] == [
        ("negative_feedback", "waiting", True)
    ]

    async with session_factory() as db, db.begin():  # the customer's yes, an agent online
        conversation = await db.get_one(Conversation, conversation_id)
        await escalations.escalate(db, conversation, EscalationReason.customer_request)
    queue = await (await client.get("/console/api/queue")).json()
    assert [(i["reason"], i["status"], i["follow_up"]) for i in queue["items"]] == [
        ("negative_feedback", "waiting", False)
    ]
    await ws.close()
