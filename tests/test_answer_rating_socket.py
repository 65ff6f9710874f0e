"""Issue #24: "did this help?" on the chat socket (bot/web/chat.py, Rasa replaced by the
stub): an `ask_helpful` frame follows a knowledge answer only, a `rate` frame stores the
customer's yes/no (the last one counts), and a bad rate frame gets a clear error frame."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.storage.models import AnswerRating
from tests.conftest import StubRasa


async def _frames(ws: Any, quiet: float = 0.6) -> list[dict[str, Any]]:
    frames = []
    while True:
        try:
            frames.append(await ws.receive_json(timeout=quiet))
        except asyncio.TimeoutError:
            return frames


def _nlu(intent: str, *steps: str) -> dict[str, Any]:
    return {
        "intent": intent,
        "confidence": 0.9,
        "runner_up": "greet",
        "runner_up_confidence": 0.01,
        "entities": [],
        "steps": list(steps),
        "model_id": "model-7",
    }


async def test_rating_a_knowledge_answer_on_the_socket(
    client: TestClient[web.Request, web.Application],
    rasa: tuple[StubRasa, str],
    session_factory: Any,
) -> None:
    stub = rasa[0]
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello"})
    assert (await ws.receive_json(timeout=5))["type"] == "session"
    await _frames(ws)

    stub.nlu = _nlu("order_status", "action_order_status")
    await ws.send_json({"type": "message", "text": "where is my order", "client_id": "c-1"})
    frames = await _frames(ws)
    other_answer = next(f["id"] for f in frames if f.get("sender") == "bot")
    assert [f for f in frames if f["type"] == "ask_helpful"] == []

    stub.nlu = _nlu("product_question", "action_answer_product_question")
    await ws.send_json(
        {"type": "message", "text": "is the mug dishwasher safe", "client_id": "c-2"}
    )
    frames = await _frames(ws)
    answer = next(f["id"] for f in frames if f.get("sender") == "bot")
    assert [f for f in frames if f["type"] == "ask_helpful"] == [
        {"type": "ask_helpful", "message_id": answer}
    ]

    await ws.send_json({"type": "rate", "message_id": answer, "helpful": False})
    assert await ws.receive_json(timeout=5) == {
        "type": "rated",
        "message_id": answer,
        "helpful": False,
    }
    await ws.send_json({"type": "rate", "message_id": answer, "helpful": True})
    assert (await ws.receive_json(timeout=5))["helpful"] is True

    bad = [
        ({"type": "rate", "message_id": other_answer, "helpful": True}, "invalid_input"),
        ({"type": "rate", "message_id": 999999, "helpful": True}, "not_found"),
        ({"type": "rate", "message_id": "1", "helpful": True}, "bad_request"),
        ({"type": "rate", "message_id": answer, "helpful": "yes"}, "bad_request"),
    ]
    for frame, code in bad:
        await ws.send_json(frame)
        reply = await ws.receive_json(timeout=5)
        assert (reply["type"], reply["error"]["code"]) == ("error", code), frame
    await ws.close()

    async with session_factory() as db:
        rows = [
            (r.message_id, r.helpful, r.intent, r.model_id)
            for r in await db.scalars(select(AnswerRating))
        ]
    assert rows == [(answer, True, "product_question", "model-7")]
