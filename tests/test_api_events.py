"""POST /api/events over HTTP: signature, size limit, JSON, schema, 202 + worker, replay."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import cli
from bot.config import DEV_EVENTS_SECRET, ConfigError, Settings
from bot.domain.enums import ShopEventStatus
from bot.domain.shop_events import EVENT_TYPES, parse_event, signature_header, signature_ok
from bot.storage.models import Order, ShopEvent, SurveyDispatch
from bot.web.app import create_app
from bot.web.events_worker import drain
from tests.live_app import serve_app
from tests.test_shop_events import order_event, recently

Client = TestClient[Any, Any]


async def post(client: Client, body: bytes, signature: str | None = "auto") -> Any:
    headers = {"Content-Type": "application/json"}
    if signature == "auto":
        headers["X-Signature"] = signature_header(DEV_EVENTS_SECRET, body)
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


async def test_signed_event_is_accepted_applied_by_the_worker_and_a_replay_returns_the_result(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    body = json.dumps(order_event("evt-1", "placed", 0, base=recently())).encode()
    first = await post(client, body)
    assert first.status == 202, await first.text()
    assert await first.json() == {
        "id": "evt-1",
        "replayed": False,
        "status": "pending",
        "result": None,
        "error": None,
    }

    await drain(client.app)
    replay = await post(client, body)
    assert replay.status == 200
    again = await replay.json()
    assert (again["id"], again["replayed"], again["status"], again["error"]) == (
        "evt-1",
        True,
        "applied",
        None,
    )
    assert again["result"]["order"] == {"number": "A20001", "status": "placed"}
    assert again["result"]["lifecycle"]["stage"] == "purchase"
    assert [s["trigger"] for s in again["result"]["surveys_scheduled"]] == ["first_order"]
    assert await (await post(client, body)).json() == again
    assert await count(session_factory, Order) == 1
    assert await count(session_factory, ShopEvent) == 1
    assert await count(session_factory, SurveyDispatch) == 1
    async with session_factory() as session:
        row = await session.get(ShopEvent, "evt-1")
        assert row is not None and row.status is ShopEventStatus.applied
        # Personal data of the body is kept only while the event waits.
        assert (row.payload, row.customer_ref, row.result) == (None, None, again["result"])


async def test_concurrent_posts_are_stored_once_each_and_all_applied(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    bodies = [
        json.dumps(
            order_event(
                f"evt-{n}", "placed", n / 60, number=f"A3{n:04d}", customer=f"C{n}", base=recently()
            )
        ).encode()
        for n in range(12)
    ]
    # Every event twice at once: one copy is new, the other a replay (same batch or not).
    responses = await asyncio.gather(*(post(client, body) for body in bodies + bodies))
    answers = [await r.json() for r in responses]
    assert {r.status for r in responses} == {202}
    by_id: dict[str, list[bool]] = {}
    for a in answers:
        by_id.setdefault(a["id"], []).append(a["replayed"])
    assert {k: sorted(v) for k, v in by_id.items()} == {
        f"evt-{n}": [False, True] for n in range(12)
    }

    await drain(client.app)
    assert await count(session_factory, ShopEvent) == 12
    assert await count(session_factory, Order) == 12
    assert await count(session_factory, SurveyDispatch) == 12  # each a first order
    async with session_factory() as session:
        statuses = (await session.scalars(select(ShopEvent.status))).all()
    assert set(statuses) == {ShopEventStatus.applied}


async def test_an_event_refused_when_applied_is_stored_as_failed_and_replays_say_why(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await post(client, json.dumps(order_event("evt-1", "placed", 0, customer="C1")).encode())
    stolen = json.dumps(order_event("evt-2", "shipped", 5, customer="C2")).encode()
    assert (await post(client, stolen)).status == 202
    await drain(client.app)

    replay = await post(client, stolen)
    assert replay.status == 200
    assert await replay.json() == {
        "id": "evt-2",
        "replayed": True,
        "status": "failed",
        "result": None,
        "error": {"code": "invalid_event", "message": "'order.number' belongs to another customer"},
    }
    async with session_factory() as session:
        order = (await session.scalars(select(Order))).one()
        assert order.status.value == "placed" and order.shipped_at is None
        failed = await session.get(ShopEvent, "evt-2")
        assert failed is not None and failed.status is ShopEventStatus.failed
        assert failed.payload is None and failed.attempts == 1


async def test_missing_or_wrong_signature_is_401_and_changes_nothing(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    body = json.dumps(order_event("evt-1", "placed", 0)).encode()
    await expect_error(await post(client, body, signature=None), 401, "bad_signature")
    await expect_error(
        await post(client, body, signature=signature_header("wrong-secret", body)),
        401,
        "bad_signature",
    )
    hex_only = signature_header(DEV_EVENTS_SECRET, body).split("v1=")[1]
    await expect_error(await post(client, body, signature=hex_only), 401, "bad_signature")
    # The scheme before issue #16 (no timestamp) is refused, saying what to send instead.
    old = "sha256=" + hmac.new(DEV_EVENTS_SECRET.encode(), body, hashlib.sha256).hexdigest()
    message = await expect_error(await post(client, body, signature=old), 401, "bad_signature")
    assert "t=<unix seconds>,v1=" in message
    tampered = body.replace(b"25.00", b"2.50")
    await expect_error(
        await post(client, tampered, signature=signature_header(DEV_EVENTS_SECRET, body)),
        401,
        "bad_signature",
    )
    assert await count(session_factory, ShopEvent) == 0


@pytest.mark.parametrize("seconds", [-301, 301, -3600])
async def test_a_signature_timestamp_outside_the_tolerance_is_401(
    client: Client, session_factory: async_sessionmaker[AsyncSession], seconds: int
) -> None:
    body = json.dumps(order_event("evt-1", "placed", 0)).encode()
    header = signature_header(DEV_EVENTS_SECRET, body, timestamp=int(time.time()) + seconds)
    message = await expect_error(await post(client, body, signature=header), 401, "stale_signature")
    assert "300 s" in message and "current time" in message
    assert await count(session_factory, ShopEvent) == 0


async def test_the_tolerance_is_configurable(engine: Any, settings: Settings) -> None:
    app = create_app(replace(settings, events_signature_tolerance_seconds=7200))
    async with TestClient(TestServer(app)) as client:
        body = json.dumps(order_event("evt-1", "placed", 0)).encode()
        header = signature_header(DEV_EVENTS_SECRET, body, timestamp=int(time.time()) - 3600)
        assert (await post(client, body, signature=header)).status == 202


async def test_a_year_old_event_with_a_fresh_signature_is_accepted_and_replays_stay_idempotent(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    # The tolerance is about the signature's timestamp, never about occurred_at: a
    # back-filled history is accepted.
    event = order_event("evt-old", "placed", 0)
    event["occurred_at"] = (datetime.now(timezone.utc) - timedelta(days=366)).isoformat()
    body = json.dumps(event).encode()
    first = await post(client, body)
    assert first.status == 202, await first.text()
    await drain(client.app)
    # A retry a moment later is signed again (a new timestamp): still the same event.
    replay = await post(
        client, body, signature=signature_header(DEV_EVENTS_SECRET, body, int(time.time()) + 5)
    )
    assert replay.status == 200
    answer = await replay.json()
    assert (answer["replayed"], answer["status"]) == (True, "applied")
    assert await count(session_factory, ShopEvent) == 1
    assert await count(session_factory, Order) == 1


async def test_oversized_body_is_413(client: Client) -> None:
    event = order_event("evt-1", "placed", 0)
    event["padding"] = "x" * (64 * 1024)
    message = await expect_error(
        await post(client, json.dumps(event).encode()), 413, "payload_too_large"
    )
    assert "65536 bytes" in message


async def test_malformed_json_is_400(client: Client) -> None:
    message = await expect_error(await post(client, b'{"id": "evt-1", '), 400, "bad_json")
    assert message.startswith("The body is not valid JSON")


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
    assert set(operation["responses"]) == {"200", "202", "400", "401", "413", "422"}
    assert "post" in document["paths"]["/api/feedback"]


def test_production_refuses_the_development_events_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("RASA_TOKEN", "r" * 40)
    monkeypatch.setenv("WIDGET_SECRET", "w" * 40)
    monkeypatch.setenv("RASA_CHANNEL_SECRET", "c" * 40)
    monkeypatch.setenv("ACTION_SERVER_TOKEN", "a" * 40)
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
    assert signature_line.strip().startswith("t=")
    assert signature_ok(DEV_EVENTS_SECRET, raw, signature_line.strip())
    event = parse_event(json.loads(raw))
    assert (event.id, event.type, event.customer.external_id) == ("evt-x", event_type, "C1001")


def test_send_event_posts_to_a_running_service_and_exits_0_on_202(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_app(tmp_path) as live:
        command = [
            "send-event",
            "--type",
            "order.placed",
            "--id",
            "evt-cli",
            "--url",
            f"{live.url}/api/events",
            "--secret",
            live.settings.events_secret,
        ]
        assert cli.main(command) == 0
        assert "HTTP 202" in capsys.readouterr().out
        assert cli.main(command) == 0  # a replay: 202 while pending, 200 once applied
        assert '"replayed": true' in capsys.readouterr().out
