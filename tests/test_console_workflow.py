"""The console's workflow over HTTP: unread counts live, release / take-over /
transfer to an offline colleague, the CX manager's read-only queue, history and reopen,
canned responses. Both databases; Rasa is the stand-in of tests/conftest.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import staff
from bot.domain.enums import ConversationStatus, StaffRole
from bot.storage.models import Conversation, Customer, utcnow
from tests.conftest import StubRasa
from tests.test_console import PASSWORD, _escalate, _login
from tests.test_web_chat import _open, _turn


async def _accounts(session_factory: Any) -> None:
    async with session_factory() as db, db.begin():
        for email, name, role in (
            ("sam@example.com", "Sam (support)", StaffRole.agent),
            ("alex@example.com", "Alex (support)", StaffRole.agent),
            ("cx@example.com", "Chris (CX)", StaffRole.cx_manager),
            ("ada@example.com", "Ada (admin)", StaffRole.admin),
        ):
            await staff.create_user(db, email, name, role, PASSWORD)


async def _ids(session_factory: Any) -> dict[str, int]:
    async with session_factory() as db:
        users = await staff.list_users(db)
    return {u.email.split("@")[0]: u.id for u in users}


async def _chat(
    client: TestClient[web.Request, web.Application], rasa: Any, session_factory: Any
) -> tuple[Any, str]:
    """A customer's chat handed to a person."""
    ws, _ = await _open(client)
    await _turn(ws, "hi")
    conversation_id: str = rasa[0].received[0]["sender"]
    await _escalate(session_factory, conversation_id)
    return ws, conversation_id


async def _queue(client: TestClient[web.Request, web.Application]) -> list[dict[str, Any]]:
    response = await client.get("/console/api/queue")
    assert response.status == 200
    items: list[dict[str, Any]] = (await response.json())["items"]
    return items


async def _post(
    client: TestClient[web.Request, web.Application],
    me: dict[str, Any],
    path: str,
    body: Any = None,
) -> Any:
    return await client.post(
        f"/console/api{path}", json=body or {}, headers={"X-CSRF-Token": me["csrf_token"]}
    )


async def _notes(ws: Any, count: int) -> list[str]:
    """The texts of the next `count` system messages the customer's widget gets."""
    texts: list[str] = []
    while len(texts) < count:
        frame = await ws.receive_json(timeout=5)
        if frame.get("type") == "message" and frame.get("sender") == "system":
            texts.append(frame["text"])
    return texts


async def _error(response: Any) -> tuple[int, str, str]:
    error = (await response.json())["error"]
    return response.status, error["code"], error["message"]


async def test_unread_counts_follow_the_customer_live_and_reading_clears_them(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await _accounts(session_factory)
    customer, conversation_id = await _chat(client, rasa, session_factory)
    me = await _login(client, "sam@example.com")
    console = await client.ws_connect("/console/ws")
    await console.send_json({"type": "watch", "conversation_id": None})
    [item] = await _queue(client)
    assert (item["unread"], item["last_message"]["text"], item["priority_label"]) == (
        1,
        "hi",
        "normal",
    )

    await _post(client, me, f"/escalations/{item['escalation_id']}/claim")
    await console.receive_json(timeout=5)  # queue_changed
    await _turn(customer, "are you there?")
    frame = await console.receive_json(timeout=5)
    assert frame == {"type": "customer_message", "conversation_id": conversation_id}
    [item] = await _queue(client)
    assert (item["unread"], item["last_message"]["text"]) == (2, "are you there?")

    read = await _post(client, me, f"/conversations/{conversation_id}/read")
    # The customer's message is the latest: once a person has joined, no system note follows it.
    assert (read.status, await read.json()) == (
        200,
        {"last_read_message_id": item["last_message"]["id"]},
    )
    assert [i["unread"] for i in await _queue(client)] == [0]
    missing = await _post(client, me, "/conversations/nope/read")
    assert (missing.status, (await missing.json())["error"]["code"]) == (404, "not_found")
    await console.close()
    await customer.close()


async def test_a_chat_transferred_to_an_offline_colleague_is_taken_over(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await _accounts(session_factory)
    ids = await _ids(session_factory)
    customer, conversation_id = await _chat(client, rasa, session_factory)
    me = await _login(client, "sam@example.com")
    online = await client.ws_connect("/console/ws")  # Sam's console is open; Alex's is not
    [item] = await _queue(client)
    escalation = f"/escalations/{item['escalation_id']}"
    await _post(client, me, f"{escalation}/claim")

    refused = await _post(client, me, f"{escalation}/transfer", {"staff_user_id": ids["alex"]})
    assert await _error(refused) == (
        409,
        "agent_offline",
        "Alex (support) is offline: they will not see this conversation until they sign in. "
        "Transfer anyway?",
    )
    forced = await _post(
        client, me, f"{escalation}/transfer", {"staff_user_id": ids["alex"], "force": True}
    )
    assert (await forced.json())["claimed_by"]["display_name"] == "Alex (support)"
    # The customer is told who has the chat at each change of hands.
    assert await _notes(customer, 2) == [
        "Sam (support) from our team has joined the chat and will reply here.",
        "Alex (support) from our team has joined the chat and will reply here.",
    ]

    stuck = await _post(client, me, f"{escalation}/resolve")
    assert await _error(stuck) == (
        409,
        "not_claimed",
        "A colleague has this conversation: take it over before resolving it.",
    )
    taken = await _post(client, me, f"{escalation}/takeover")
    assert taken.status == 200
    assert (await taken.json())["claimed_by"]["display_name"] == "Sam (support)"
    assert await _notes(customer, 1) == [
        "Sam (support) from our team has joined the chat and will reply here."
    ]
    reply = await _post(client, me, f"/conversations/{conversation_id}/messages", {"text": "Back!"})
    assert reply.status == 201

    released = await _post(client, me, f"{escalation}/release")
    assert ((await released.json())["status"], (await released.json())["claimed_by"]) == (
        "waiting",
        None,
    )
    async with session_factory() as db:
        conversation = await db.get_one(Conversation, conversation_id)
    assert conversation.status is ConversationStatus.waiting_for_agent
    await online.close()
    await customer.close()


async def test_a_cx_manager_gets_a_read_only_console(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await _accounts(session_factory)
    customer, conversation_id = await _chat(client, rasa, session_factory)
    me = await _login(client, "cx@example.com")

    page = await client.get("/console/")
    assert page.status == 200 and "queue.js" in await page.text()
    [item] = await _queue(client)
    detail = await client.get(f"/console/api/conversations/{conversation_id}")
    assert detail.status == 200
    assert (await client.get("/console/history")).status == 200
    claim = await _post(client, me, f"/escalations/{item['escalation_id']}/claim")
    assert await _error(claim) == (403, "forbidden", "Your role (cx_manager) cannot do this.")
    assert (await client.get("/console/api/canned")).status == 403
    await customer.close()


async def test_history_search_and_reopen_over_http(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await _accounts(session_factory)
    customer, conversation_id = await _chat(client, rasa, session_factory)
    async with session_factory() as db, db.begin():
        tom = Customer(external_id="C1002", name="Tom Baker", email="tom@example.com")
        db.add(tom)
        await db.flush()
        (await db.get_one(Conversation, conversation_id)).customer_id = tom.id
    me = await _login(client, "sam@example.com")
    [item] = await _queue(client)
    escalation = f"/escalations/{item['escalation_id']}"
    await _post(client, me, f"{escalation}/claim")
    await _post(client, me, f"{escalation}/resolve")

    found = await (await client.get("/console/api/history?q=baker")).json()
    assert [(i["conversation_id"], i["customer"]["name"]) for i in found["items"]] == [
        (conversation_id, "Tom Baker")
    ]
    assert (await (await client.get("/console/api/history?q=nobody")).json())["items"] == []
    bad = await client.get("/console/api/history?from=monday")
    assert await _error(bad) == (422, "invalid_input", "from must be a date like 2026-12-06.")

    reopened = await _post(client, me, f"{escalation}/reopen")
    body = await reopened.json()
    assert (reopened.status, body["status"], body["claimed_by"]["display_name"]) == (
        200,
        "claimed",
        "Sam (support)",
    )
    assert rasa[0].slot_events[-1] == (conversation_id, [{"event": "pause"}])
    assert (await (await client.get("/console/api/history")).json())["items"] == []
    await customer.close()


async def test_admins_manage_canned_responses_agents_insert_them_filled(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await _accounts(session_factory)
    customer, conversation_id = await _chat(client, rasa, session_factory)
    async with session_factory() as db, db.begin():
        tom = Customer(external_id="C1002", name="Tom", email="tom@example.com")
        db.add(tom)
        await db.flush()
        (await db.get_one(Conversation, conversation_id)).customer_id = tom.id
    admin = await _login(client, "ada@example.com")
    created = await _post(
        client,
        admin,
        "/canned",
        {"shortcut": "hello", "title": "Greeting", "text": "Hi {customer_name}, {order_number}?"},
    )
    assert created.status == 201
    canned_id = (await created.json())["id"]
    taken = await _post(client, admin, "/canned", {"shortcut": "hello", "title": "x", "text": "y"})
    assert await _error(taken) == (409, "shortcut_taken", "The shortcut /hello is taken.")

    agent = await _login(client, "sam@example.com")
    listed = await (
        await client.get(f"/console/api/canned?conversation_id={conversation_id}")
    ).json()
    assert [(c["shortcut"], c["filled"]) for c in listed["items"]] == [
        ("hello", "Hi Tom, {order_number}?")
    ]
    refused = await _post(client, agent, "/canned", {"shortcut": "x", "title": "x", "text": "x"})
    assert refused.status == 403
    admin = await _login(client, "ada@example.com")
    deleted = await client.delete(
        f"/console/api/canned/{canned_id}", headers={"X-CSRF-Token": admin["csrf_token"]}
    )
    assert deleted.status == 204
    assert (await (await client.get("/console/api/canned")).json())["items"] == []
    await customer.close()


async def test_the_widget_hears_whether_the_team_is_online_and_its_hours(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """The widget's header said "Online" while the whole team was away (issue #20)."""
    await _accounts(session_factory)
    away, session = await _open(client)
    assert session["team"] == {
        "online": False,
        "hours": "Monday to Friday, 9:00 to 17:00 (Central European Time)",
    }
    await away.close()

    await _login(client, "sam@example.com")  # an agent's console is open
    assert (await client.get("/console/api/queue")).status == 200
    back, session = await _open(client)
    assert session["team"]["online"] is True
    await back.close()

    async with session_factory() as db, db.begin():
        await staff.touch_presence(
            db, (await _ids(session_factory))["sam"], utcnow() - timedelta(minutes=2)
        )
    # Only a CX manager looks at the console: nobody of the support team is online.
    await _login(client, "cx@example.com")
    assert (await client.get("/console/api/queue")).status == 200
    later, session = await _open(client)
    assert session["team"]["online"] is False
    await later.close()


async def test_the_agent_sees_the_customer_leave_and_come_back(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await _accounts(session_factory)
    customer, session = await _open(client)
    await _turn(customer, "hi")
    conversation_id = rasa[0].received[0]["sender"]
    await _escalate(session_factory, conversation_id)
    me = await _login(client, "sam@example.com")
    detail = await (await client.get(f"/console/api/conversations/{conversation_id}")).json()
    assert detail["conversation"]["customer_online"] is True
    console = await client.ws_connect("/console/ws")
    await console.send_json({"type": "watch", "conversation_id": conversation_id})
    await _post(client, me, f"/conversations/{conversation_id}/notes", {"text": "watching"})
    assert (await console.receive_json(timeout=5))["type"] == "note"  # the watch is on

    await customer.close()
    assert await console.receive_json(timeout=5) == {
        "type": "customer_presence",
        "online": False,
        "conversation_id": conversation_id,
    }
    detail = await (await client.get(f"/console/api/conversations/{conversation_id}")).json()
    assert detail["conversation"]["customer_online"] is False

    back, _ = await _open(client, session["token"])
    assert await console.receive_json(timeout=5) == {
        "type": "customer_presence",
        "online": True,
        "conversation_id": conversation_id,
    }
    await back.close()
    await console.close()
