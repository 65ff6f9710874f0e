"""POST /api/events over HTTP: signature, size limit, JSON, schema, replay."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import cli
from bot.config import DEV_EVENTS_SECRET, ConfigError, Settings
from bot.domain.shop_events import EVENT_TYPES, parse_event, sign
from bot.storage.models import Order, ShopEvent, SurveyDispatch
from tests.test_shop_events import order_event

Client = TestClient[Any, Any]


async def post(client: Client, body: bytes, signature: str | None = "auto") -> Any:
    headers = {"Content-Type": "application/json"}
    if signature == "auto":
        headers["X-Signature"] = sign(DEV_EVENTS_SECRET, body)
    elif signature is not None:
        headers["X-Signature"] = signature
    return await client.post("/api/events", data=body, headers=headers)


async def expect_error(response: Any, status: int, code: str) -> str:
    assert response.status == status, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == code
    return str(error["message"])


async def count(session_factory: async_sessionmaker[AsyncSession], model: Any) -> int:
    async with session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_signed_event_is_applied_and_a_replay_returns_the_first_result(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    body = json.dumps(order_event("evt-1", "placed", 0)).encode()
    first = await post(client, body)
    assert first.status == 200, await first.text()
    answer = await first.json()
    assert answer["id"] == "evt-1" and answer["replayed"] is False
    assert answer["result"]["order"] == {"number": "A20001", "status": "placed"}
    assert answer["result"]["lifecycle"]["stage"] == "purchase"

    replay = await post(client, body)
    assert replay.status == 200
    again = await replay.json()
    assert again["replayed"] is True
    assert again["result"] == answer["result"]
    assert await count(session_factory, Order) == 1
    assert await count(session_factory, ShopEvent) == 1
    assert await count(session_factory, SurveyDispatch) == 1


async def test_missing_or_wrong_signature_is_401_and_changes_nothing(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    body = json.dumps(order_event("evt-1", "placed", 0)).encode()
    await expect_error(await post(client, body, signature=None), 401, "bad_signature")
    await expect_error(
        await post(client, body, signature=sign("wrong-secret", body)), 401, "bad_signature"
    )
    hex_only = sign(DEV_EVENTS_SECRET, body).removeprefix("sha256=")
    await expect_error(await post(client, body, signature=hex_only), 401, "bad_signature")
    tampered = body.replace(b"25.00", b"2.50")
    await expect_error(
        await post(client, tampered, signature=sign(DEV_EVENTS_SECRET, body)), 401, "bad_signature"
    )
    assert await count(session_factory, ShopEvent) == 0


async def test_oversized_body_is_413(client: Client) -> None:
    event = order_event("evt-1", "placed", 0)
    event["padding"] = "x" * (64 * 1024)
    message = await expect_error(
        await post(client, json.dumps(event).encode()), 413, "payload_too_large"
    )
    assert "65536 bytes" in message


async def test_malformed_json_is_400(client: Client) -> None:
    await expect_error(await post(client, b'{"id": "evt-1", '), 400, "bad_request")


async def test_unknown_type_is_422(client: Client) -> None:
    body = json.dumps({**order_event("evt-1", "placed", 0), "type": "order.lost"}).encode()
    message = await expect_error(await post(client, body), 422, "unknown_event_type")
    assert "order.lost" in message


async def test_schema_error_names_the_field(client: Client) -> None:
    event = order_event("evt-1", "placed", 0)
    event["order"]["items"][0]["price"] = "ten"
    message = await expect_error(
        await post(client, json.dumps(event).encode()), 422, "invalid_event"
    )
    assert message.startswith("'order.items[0].price'")


async def test_events_need_no_api_token_and_are_in_the_openapi_document(client: Client) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    operation = document["paths"]["/api/events"]["post"]
    assert operation["security"] == []
    assert set(operation["responses"]) == {"200", "400", "401", "409", "413", "422"}
    assert "post" in document["paths"]["/api/feedback"]


def test_production_refuses_the_development_events_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("RASA_TOKEN", "r" * 40)
    monkeypatch.setenv("WIDGET_SECRET", "w" * 40)
    monkeypatch.delenv("EVENTS_SECRET", raising=False)
    with pytest.raises(ConfigError, match="EVENTS_SECRET"):
        Settings.from_env()
    monkeypatch.setenv("EVENTS_SECRET", "short")
    with pytest.raises(ConfigError, match="EVENTS_SECRET"):
        Settings.from_env()
    monkeypatch.setenv("EVENTS_SECRET", "e" * 40)
    assert Settings.from_env().events_secret == "e" * 40


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_send_event_dry_run_prints_a_valid_signed_sample(
    event_type: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["send-event", "--type", event_type, "--id", "evt-x", "--dry-run"]) == 0
    out = capsys.readouterr().out
    body, signature_line = out.rsplit("X-Signature: ", 1)
    raw = body.rstrip("\n").encode()
    assert signature_line.strip() == sign(DEV_EVENTS_SECRET, raw)
    event = parse_event(json.loads(raw))
    assert (event.id, event.type, event.customer.external_id) == ("evt-x", event_type, "C1001")
