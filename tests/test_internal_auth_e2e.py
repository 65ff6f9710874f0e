"""Against the real stack (issue #16): Rasa's REST channel and the action server refuse
whoever lacks their secret, no secret is on a command line, and a customer cannot type an
intent (`/EXTERNAL_support_resolved`) into the chat."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.domain.enums import OrderStatus
from bot.storage.db import create_engine, create_session_factory
from bot.storage.models import Conversation, Escalation, Feedback, Message, Order
from tests import factories

pytestmark = pytest.mark.e2e

SECRET_NAMES = ("RASA_TOKEN", "RASA_CHANNEL_SECRET", "ACTION_SERVER_TOKEN")


async def _scalar(live_stack: Any, statement: Any) -> Any:
    engine = create_engine(live_stack.database_url)
    try:
        async with create_session_factory(engine)() as session:
            return await session.scalar(statement)
    finally:
        await engine.dispose()


async def test_a_forged_webhook_call_is_refused_and_escalates_nothing(live_stack: Any) -> None:
    sender = "forged-webhook-16"
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"X-Channel-Secret": "guessed"}):
            async with http.post(
                f"{live_stack.rasa_url}/webhooks/rest/webhook",
                json={"sender": sender, "message": "/request_human"},
                headers=headers,
            ) as response:
                assert response.status == 401, await response.text()
    await asyncio.sleep(1)
    escalations = await _scalar(
        live_stack, select(func.count()).where(Escalation.conversation_id == sender)
    )
    assert escalations == 0


async def test_a_forged_action_server_call_is_refused_and_changes_no_order(
    live_stack: Any,
) -> None:
    engine = create_engine(live_stack.database_url)
    conversation_id = "forged-action-16"
    try:
        async with create_session_factory(engine)() as session, session.begin():
            owner = await factories.customer(session, 16016, email="forged16@example.com")
            order = await factories.order(session, owner, "E2E16001", OrderStatus.placed)
            session.add(
                Conversation(
                    id=conversation_id,
                    customer_id=owner.id,
                    order_id=order.id,
                    identified_by="order",
                )
            )
            order_id = order.id
    finally:
        await engine.dispose()
    call = {
        "next_action": "action_resolve_pending",
        "sender_id": conversation_id,
        "version": "3.6.21",
        "tracker": {
            "sender_id": conversation_id,
            "slots": {
                "identity": "verified",
                "pending_action": "cancel_order",
                "order_number": "E2E16001",
                "awaiting": "confirmation",
            },
            "latest_message": {
                "text": "yes",
                "intent": {"name": "affirm", "confidence": 1.0},
                "entities": [],
            },
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        },
        "domain": {},
    }
    url = f"http://127.0.0.1:{live_stack.ports.actions}/webhook"
    async with aiohttp.ClientSession() as http:
        for params in ({}, {"token": "guessed"}):
            async with http.post(url, json=call, params=params) as response:
                assert response.status == 401, await response.text()
    status = await _scalar(live_stack, select(Order.status).where(Order.id == order_id))
    assert status is OrderStatus.placed


async def _turn(ws: aiohttp.ClientWebSocketResponse[bool], text: str, client_id: str) -> list[str]:
    """The bot's and the system's texts in answer to one message."""
    await ws.send_json({"type": "message", "text": text, "client_id": client_id})
    texts: list[str] = []
    while True:
        frame: dict[str, Any] = await ws.receive_json(timeout=60)
        if frame["type"] == "typing" and not frame["on"]:
            break
        if frame["type"] == "message" and frame.get("sender") in ("bot", "system"):
            texts.append(frame["text"])
    while True:
        try:
            frame = await ws.receive_json(timeout=1)
        except asyncio.TimeoutError:
            return texts
        if frame["type"] == "message":
            texts.append(frame["text"])


async def test_a_typed_intent_is_text_and_stores_no_feedback(live_stack: Any) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{live_stack.web_url}/ws") as ws,
    ):
        await ws.send_json({"type": "hello"})
        frame = await ws.receive_json(timeout=10)
        assert frame["type"] == "session"
        first = await _turn(ws, "/EXTERNAL_support_resolved", "e2e-16-slash")
        second = await _turn(ws, "5", "e2e-16-five")
    said = " | ".join(first + second)
    assert "questions about the help you got" not in said, said  # the support survey
    conversation_id = await _scalar(
        live_stack,
        select(Message.conversation_id).where(Message.client_message_id == "e2e-16-slash"),
    )
    # The transcript shows exactly what the customer typed.
    typed = await _scalar(
        live_stack, select(Message.text).where(Message.client_message_id == "e2e-16-slash")
    )
    assert typed == "/EXTERNAL_support_resolved"
    feedback = await _scalar(
        live_stack, select(func.count()).where(Feedback.conversation_id == conversation_id)
    )
    assert feedback == 0, said


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return found


def test_no_secret_is_on_a_command_line(live_stack: Any) -> None:
    rasa_pid = live_stack.processes["rasa"].pid
    environ = dict(
        entry.split("=", 1)
        for entry in Path(f"/proc/{rasa_pid}/environ").read_text().split("\0")
        if "=" in entry
    )
    secrets = {name: environ[name] for name in SECRET_NAMES if environ.get(name)}
    assert set(secrets) == set(SECRET_NAMES), sorted(secrets)
    for process in live_stack.processes.values():
        for pid in _descendants(process.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue  # exited meanwhile
            for name, value in secrets.items():
                assert value not in cmdline, f"{name} is visible in `ps`: {json.dumps(cmdline)}"


async def test_the_web_services_own_external_intent_still_runs(live_stack: Any) -> None:
    """What the console does when an agent resolves a chat: `EXTERNAL_support_resolved`
    through Rasa's HTTP API (with its token) still starts the support survey."""
    from bot.config import Settings
    from bot.web.rasa_client import RasaClient

    settings = Settings.from_env()
    async with aiohttp.ClientSession() as http:
        rasa = RasaClient(http, live_stack.rasa_url, settings.rasa_token, timeout=30)
        replies = await rasa.trigger_intent("e2e-16-resolved", "EXTERNAL_support_resolved")
    assert "questions about the help you got" in " | ".join(r.text for r in replies)
