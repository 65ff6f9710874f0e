"""The chat WebSocket: sessions, transcript, limits, and Rasa failures (Rasa replaced by a stub server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.config import Settings
from bot.storage.models import Conversation, ConversationStatus, Message
from bot.web.app import create_app


class StubRasa:
    """Rasa's REST channel as seen from the web service: echo, or fail on demand."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail = False
        self.delay = 0.0

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        await asyncio.sleep(self.delay)
        if self.fail:
            return web.Response(status=500)
        return web.json_response(
            [
                {
                    "recipient_id": body["sender"],
                    "text": f"echo: {body['message']}",
                    "buttons": [{"title": "Yes", "payload": "yes"}],
                }
            ]
        )

    async def status(self, _request: web.Request) -> web.Response:
        return web.json_response({"model_file": "models/current.tar.gz"})


@pytest.fixture
async def rasa() -> AsyncIterator[tuple[StubRasa, str]]:
    stub = StubRasa()
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", stub.webhook)
    app.router.add_get("/status", stub.status)
    server = TestServer(app)
    await server.start_server()
    yield stub, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def client(
    engine: Any, settings: Settings, rasa: tuple[StubRasa, str]
) -> AsyncIterator[TestClient]:
    app = create_app(
        replace(settings, rasa_url=rasa[1], max_message_chars=2000, rasa_timeout_seconds=1.0)
    )
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _open(client: TestClient, token: str | None = None) -> tuple[Any, dict[str, Any]]:
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello", "token": token})
    return ws, await ws.receive_json(timeout=5)


async def _turn(ws: Any, text: str) -> list[dict[str, Any]]:
    """Frames after sending `text`, up to the first error or bot/system reply."""
    await ws.send_json({"type": "message", "text": text})
    frames = []
    while True:
        frame = await ws.receive_json(timeout=5)
        frames.append(frame)
        if frame["type"] == "error" or frame.get("sender") in ("bot", "system"):
            return frames


async def test_chat_page_is_served_with_security_headers(client: TestClient) -> None:
    response = await client.get("/")
    assert response.status == 200
    assert "chat.js" in await response.text()
    assert "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_server_mints_session_and_relays_with_its_own_sender_id(
    client: TestClient, rasa: tuple[StubRasa, str], session_factory: Any
) -> None:
    ws, session = await _open(client)
    assert session["type"] == "session" and session["history"] == [] and len(session["token"]) >= 40

    frames = await _turn(ws, "hello there")

    assert frames[0] == {"type": "typing", "on": True}
    assert frames[-1]["text"] == "echo: hello there"
    assert frames[-1]["buttons"] == [{"title": "Yes", "payload": "yes"}]
    sender = rasa[0].received[0]["sender"]
    assert sender != session["token"]
    async with session_factory() as db:
        rows = (
            await db.scalars(
                select(Message).where(Message.conversation_id == sender).order_by(Message.id)
            )
        ).all()
    assert [(m.sender.value, m.text) for m in rows] == [
        ("customer", "hello there"),
        ("bot", "echo: hello there"),
    ]
    await ws.close()


async def test_token_resumes_conversation_with_history(client: TestClient) -> None:
    ws, session = await _open(client)
    await _turn(ws, "first")
    await ws.close()

    ws2, resumed = await _open(client, session["token"])
    assert [(m["sender"], m["text"]) for m in resumed["history"]] == [
        ("customer", "first"),
        ("bot", "echo: first"),
    ]
    await ws2.close()
    ws3, other = await _open(client, "forged-token")
    assert other["history"] == [] and other["token"] != "forged-token"
    await ws3.close()


@pytest.mark.parametrize(
    ("text", "code"), [("   ", "empty_message"), ("x" * 10_000, "message_too_long")]
)
async def test_bad_messages_get_a_clear_error_and_nothing_is_stored(
    client: TestClient, rasa: tuple[StubRasa, str], session_factory: Any, text: str, code: str
) -> None:
    ws, _ = await _open(client)
    frames = await _turn(ws, text)
    assert (
        frames == [frames[-1]]
        and frames[-1]["type"] == "error"
        and frames[-1]["error"]["code"] == code
    )
    assert rasa[0].received == []
    async with session_factory() as db:
        assert (await db.scalars(select(Message))).all() == []
    frames = await _turn(ws, "still here")  # the connection keeps serving
    assert frames[-1]["text"] == "echo: still here"
    await ws.close()


async def test_rasa_failure_gives_a_retry_message_and_is_recorded(
    client: TestClient, rasa: tuple[StubRasa, str], session_factory: Any
) -> None:
    rasa[0].fail = True
    ws, _ = await _open(client)
    frames = await _turn(ws, "where is my order")
    assert frames[-1]["sender"] == "system"
    assert frames[-1]["text"].startswith("Sorry, I'm having trouble answering right now")
    async with session_factory() as db:
        assert [
            m.sender.value for m in (await db.scalars(select(Message).order_by(Message.id))).all()
        ] == ["customer", "system"]
    await ws.close()


async def test_rasa_timeout_gives_a_retry_message(
    client: TestClient, rasa: tuple[StubRasa, str]
) -> None:
    # Regression: on Python 3.10 asyncio.TimeoutError is not the builtin TimeoutError.
    rasa[0].delay = 2.0
    ws, _ = await _open(client)
    frames = await _turn(ws, "hello")
    assert frames[-1]["sender"] == "system"
    assert frames[-1]["text"].startswith("Sorry, I'm having trouble answering right now")
    await ws.close()


async def test_bot_stays_silent_while_waiting_for_an_agent(
    client: TestClient, rasa: tuple[StubRasa, str], session_factory: Any
) -> None:
    ws, _ = await _open(client)
    await _turn(ws, "hi")
    sender = rasa[0].received[0]["sender"]
    async with session_factory() as db, db.begin():
        conversation = await db.get(Conversation, sender)
        conversation.status = ConversationStatus.waiting_for_agent
    frames = await _turn(ws, "are you there?")
    assert frames[-1]["sender"] == "system" and "person from our team" in frames[-1]["text"]
    assert len(rasa[0].received) == 1
    await ws.close()


async def test_foreign_origin_is_refused(client: TestClient) -> None:
    response = await client.get(
        "/ws",
        headers={
            "Origin": "https://evil.example",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "forbidden_origin"


async def test_health_reports_database_and_rasa(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "rasa": "ready"}


async def test_unknown_route_is_a_json_404(client: TestClient) -> None:
    response = await client.get("/nope")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
