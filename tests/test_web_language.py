"""Other languages in the chat (issue #17 item 7; Rasa replaced by the stub server)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain.enums import MessageSender
from bot.storage.models import Conversation, Feedback, Message
from bot.web.app import create_app
from bot.web.language import LANGUAGE_DETECTOR, LANGUAGE_INTENT
from tests.conftest import StubRasa
from tests.test_console import _login, _setup
from tests.test_web_chat import _open, _turn


async def _conversation(session_factory: async_sessionmaker[AsyncSession]) -> Conversation:
    async with session_factory() as db:
        conversation = await db.scalar(select(Conversation))
    assert conversation is not None
    return conversation


async def test_a_spanish_message_triggers_the_language_intent_and_is_never_sent_as_text(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: Any,
) -> None:
    ws, _ = await _open(client)

    frames = await _turn(ws, "mi pedido no ha llegado todavía")

    stub = rasa[0]
    conversation = await _conversation(session_factory)
    assert stub.received == []  # the NLU never saw the text
    assert stub.triggered == [(conversation.id, LANGUAGE_INTENT)]
    assert stub.trigger_entities == [{"language": "es"}]
    assert frames[-1]["sender"] == "bot" and frames[-1]["text"] == "How satisfied are you?"
    assert conversation.language == "es"
    async with session_factory() as db:
        customer_texts = (
            await db.scalars(select(Message.text).where(Message.sender == MessageSender.customer))
        ).all()
        feedback_rows = await db.scalar(select(func.count()).select_from(Feedback))
    assert customer_texts == ["mi pedido no ha llegado todavía"]  # stored as typed
    assert feedback_rows == 0


async def test_short_or_english_messages_go_to_the_nlu_as_before(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: Any,
) -> None:
    ws, _ = await _open(client)

    for text in ("ok danke", "merci", "A10001", "thanks!!", "where is my order"):
        frames = await _turn(ws, text)
        assert frames[-1]["text"] == f"echo: {text}"

    stub = rasa[0]
    assert [body["message"] for body in stub.received] == [
        "ok danke",
        "merci",
        "A10001",
        "thanks!!",
        "where is my order",
    ]
    assert stub.triggered == []
    assert (await _conversation(session_factory)).language is None


async def test_in_a_form_the_text_is_an_answer_but_the_language_is_still_tagged(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: Any,
) -> None:
    stub = rasa[0]
    stub.state = {
        "paused": False,
        "active_loop": {"name": "address_form"},
        "slots": {"requested_slot": "new_address"},
    }
    ws, _ = await _open(client)

    frames = await _turn(ws, "Keizersgracht 123, 1015 CJ Amsterdam, bij de bakker om de hoek")

    assert frames[-1]["text"].startswith("echo: Keizersgracht 123")
    assert stub.triggered == []
    assert (await _conversation(session_factory)).language == "nl"


async def test_a_quick_reply_payload_is_never_redirected(
    client: TestClient[web.Request, web.Application], rasa: tuple[StubRasa, str]
) -> None:
    ws, _ = await _open(client)
    # The stub offers a button titled "Yes" with payload "yes"; a payload goes as it is.
    await _turn(ws, "hello")
    await ws.send_json(
        {"type": "message", "text": "yes", "display": "Sí, quiero hablar con una persona"}
    )
    while (await ws.receive_json(timeout=5)).get("sender") != "bot":
        pass
    assert [body["message"] for body in rasa[0].received] == ["hello", "yes"]
    assert rasa[0].triggered == []


async def test_the_console_shows_the_conversation_language(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: Any,
) -> None:
    await _setup(session_factory)
    ws, _ = await _open(client)
    await _turn(ws, "Wo ist meine Bestellung? Ich warte seit einer Woche.")
    conversation = await _conversation(session_factory)
    # A CX manager reads every conversation (an agent only those of their work, issue #22).
    await _login(client, "cx@example.com")

    detail = await (await client.get(f"/console/api/conversations/{conversation.id}")).json()

    assert detail["conversation"]["language"] == "de"


async def test_language_detection_can_be_switched_off(
    engine: Any, settings: Settings, rasa: tuple[StubRasa, str]
) -> None:
    app = create_app(replace(settings, rasa_url=rasa[1], language_detection=()))
    async with TestClient(TestServer(app)) as client:
        assert LANGUAGE_DETECTOR not in app
        ws, _ = await _open(client)
        frames = await _turn(ws, "mi pedido no ha llegado todavía")
    assert frames[-1]["text"] == "echo: mi pedido no ha llegado todavía"
    assert rasa[0].triggered == []
