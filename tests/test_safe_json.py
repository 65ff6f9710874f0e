"""Malformed JSON everywhere it is read (issue #16 item 5): deep nesting and NaN/Infinity
are a 400 `bad_json` (an error frame on the chat socket, which stays open), never a 500,
a dropped socket or a RecursionError in a background task."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.analytics_consumer import handle
from bot.config import DEV_EVENTS_SECRET
from bot.domain import safe_json, staff
from bot.domain.enums import StaffRole
from bot.domain.shop_events import signature_header
from bot.web.hub import ChatHub, Fanout, StaffHub
from tests.staff_helpers import bearer, create_api_token, create_staff, sign_in
from tests.test_shop_events import order_event

Client = TestClient[Any, Any]
DEEP = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a":' * 5000 + "1" + "}" * 5000
NON_FINITE = ('{"x": NaN}', '{"x": Infinity}', '{"x": -Infinity}', '{"x": 1e999}')


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        staff, "password_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


# ---- the helper ----------------------------------------------------------------------------


def test_ordinary_json_parses_as_json_does() -> None:
    text = '{"a": [1, 2.5, -3e2, "x[{\\"]", {"b": null, "c": true}], "d": "\\u00e9"}'
    assert safe_json.loads(text) == json.loads(text)
    assert safe_json.loads(text.encode()) == json.loads(text)
    assert safe_json.loads("[" * 64 + "]" * 64) == json.loads("[" * 64 + "]" * 64)


@pytest.mark.parametrize("text", [DEEP, DEEP_OBJECT, "[" * 65 + "]" * 65, "[" * 100_000])
def test_nesting_deeper_than_the_limit_is_refused(text: str) -> None:
    with pytest.raises(safe_json.BadJson) as error:
        safe_json.loads(text)
    assert error.value.message == "JSON nested deeper than 64 levels is refused."
    assert error.value.status == 400 and error.value.code == "bad_json"


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"text": "[" * 5000 + '\\"{' * 100})
    assert safe_json.loads(text) == json.loads(text)


@pytest.mark.parametrize("text", NON_FINITE)
def test_non_finite_numbers_are_refused(text: str) -> None:
    with pytest.raises(safe_json.BadJson, match="NaN and Infinity"):
        safe_json.loads(text)


@pytest.mark.parametrize("text", ["", "{", "nope", '{"a": 1} x', b"\xff\xfe\x00"])
def test_not_json_is_refused_with_the_position(text: str | bytes) -> None:
    with pytest.raises(safe_json.BadJson, match="not valid JSON"):
        safe_json.loads(text)


def test_bad_json_is_a_value_error() -> None:
    # So readers that skip broken input (`except ValueError`) keep doing so.
    assert issubclass(safe_json.BadJson, ValueError)


# ---- every HTTP reader -------------------------------------------------------------------


async def _bad_json(response: Any, needle: str) -> None:
    assert response.status == 400, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == "bad_json" and needle in error["message"], error


@pytest.mark.parametrize("body", [DEEP, '{"email": "a@example.com", "password": NaN}'])
async def test_login_api(client: Client, body: str) -> None:
    response = await client.post(
        "/console/api/login",
        data=body,
        headers={"Content-Type": "application/json", "X-Requested-With": "console"},
    )
    await _bad_json(response, "JSON")


@pytest.mark.parametrize("body", [DEEP, NON_FINITE[0]])
async def test_signed_events_webhook(client: Client, body: str) -> None:
    raw = body.encode()
    response = await client.post(
        "/api/events",
        data=raw,
        headers={
            "Content-Type": "application/json",
            "X-Signature": signature_header(DEV_EVENTS_SECRET, raw),
        },
    )
    await _bad_json(response, "JSON")


async def test_events_webhook_nan_inside_a_valid_event(client: Client) -> None:
    raw = json.dumps(order_event("evt-nan", "placed", 0)).replace('"25.00"', "NaN").encode()
    response = await client.post(
        "/api/events",
        data=raw,
        headers={"X-Signature": signature_header(DEV_EVENTS_SECRET, raw)},
    )
    await _bad_json(response, "NaN and Infinity")


@pytest.mark.parametrize("body", [DEEP_OBJECT, '{"name": "x", "role": "agent", "n": Infinity}'])
async def test_api_bodies_read_by_read_json_object(
    client: Client, session_factory: async_sessionmaker[AsyncSession], body: str
) -> None:
    token = await create_api_token(session_factory, StaffRole.admin)
    for path in ("/api/tokens", "/api/feedback", "/api/insights"):
        response = await client.post(
            path, data=body, headers={**bearer(token), "Content-Type": "application/json"}
        )
        await _bad_json(response, "JSON")


async def test_console_api_with_a_session(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await create_staff(session_factory)
    headers = await sign_in(client, StaffRole.agent)
    response = await client.post(
        "/console/api/escalations/1/transfer",
        data=DEEP,
        headers={**headers, "Content-Type": "application/json"},
    )
    await _bad_json(response, "nested deeper than 64 levels")


# ---- sockets and background readers --------------------------------------------------------


@pytest.mark.parametrize("frame", [DEEP, DEEP_OBJECT, '{"type": "hello", "token": NaN}'])
async def test_chat_frame_gets_an_error_frame_and_the_socket_stays_open(
    client: Client, frame: str
) -> None:
    async with client.ws_connect("/ws") as ws:
        await ws.send_str(frame)
        refused = await ws.receive_json(timeout=5)
        assert refused["type"] == "error" and refused["error"]["code"] == "bad_json"
        await ws.send_json({"type": "hello"})
        assert (await ws.receive_json(timeout=5))["type"] == "session"


async def test_console_frame_is_ignored_and_the_socket_stays_open(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await create_staff(session_factory)
    await sign_in(client, StaffRole.agent)
    async with client.ws_connect("/console/ws") as ws:
        await ws.send_str("[" * 2000 + "]" * 2000)  # within the console's 4 KiB frames
        await ws.send_str('{"type": "watch", "conversation_id": NaN}')
        await ws.send_str('{"type": "watch", "conversation_id": "abc"}')
        with pytest.raises(asyncio.TimeoutError):  # no close frame: the socket is still up
            await ws.receive(timeout=1)
        assert not ws.closed


async def test_redis_fanout_skips_a_poisoned_message() -> None:
    fanout = Fanout(redis=None)
    delivered: list[Any] = []

    class Hub(ChatHub):
        async def deliver(
            self, conversation_id: str, frame: dict[str, Any], exclude: Any = None
        ) -> int:
            delivered.append(frame)
            return 0

    hub, staff_hub = Hub(), StaffHub()
    await fanout._deliver(hub, staff_hub, DEEP)
    await fanout._deliver(
        hub, staff_hub, '{"target": "chat", "conversation_id": "c", "frame": {"x": NaN}}'
    )
    await fanout._deliver(
        hub, staff_hub, json.dumps({"target": "chat", "conversation_id": "c", "frame": {"x": 1}})
    )
    assert delivered == [{"x": 1}]


async def test_analytics_consumer_skips_a_poisoned_message(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    assert await handle(session_factory, DEEP.encode()) == 0
    assert await handle(session_factory, b'{"event": "user", "timestamp": NaN}') == 0
