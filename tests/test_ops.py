"""Operations of the production profile: /healthz, /readyz, /metrics, JSON logs with the
conversation id, several Rasa workers, two web replicas (Redis fan-out, shared de-duplication)
and graceful shutdown. Rasa is the StubRasa of conftest."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest

from bot.cli.privacy import end_live_tabs
from bot.config import Settings
from bot.domain.enums import MessageSender
from bot.web.app import create_app
from bot.web.delivery import push
from bot.web.keys import HUB as HUB_KEY
from bot.web.ops import METRICS, JsonFormatter, configure_logging, conversation_id_var
from tests.conftest import StubRasa

METRICS_TOKEN = "metrics-" + "t" * 32
METRICS_BEARER = {"Authorization": f"Bearer {METRICS_TOKEN}"}
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def _redis_problem() -> str | None:
    from redis import Redis

    try:
        Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"Redis not reachable at {REDIS_URL}: {exc!r}"
    return None


needs_redis = pytest.mark.skipif(_redis_problem() is not None, reason=_redis_problem() or "")


async def _open(
    client: TestClient[web.Request, web.Application], token: str | None = None
) -> tuple[Any, dict[str, Any]]:
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello", "token": token})
    return ws, await ws.receive_json(timeout=5)


async def _until(ws: Any, predicate: Any, timeout: float = 5) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = await ws.receive_json(timeout=timeout)
        if predicate(frame):
            return frame


@pytest.fixture
async def action_server() -> AsyncIterator[str]:
    app = web.Application()

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/health", health)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("/webhook"))
    await server.close()


async def test_healthz_keeps_its_shape(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "rasa": "ready"}


def _internal(app_settings: Settings, port: int) -> TestClient[Any, Any]:
    """A client of the app served on its internal ops port: /readyz and /metrics in full."""
    app = create_app(replace(app_settings, ops_port=port))
    return TestClient(TestServer(app, port=port))


async def test_readyz_is_ready_when_every_dependency_answers(
    engine: Any,
    settings: Settings,
    rasa: tuple[StubRasa, str],
    action_server: str,
    unused_tcp_port: int,
) -> None:
    app_settings = replace(settings, rasa_url=rasa[1], action_server_url=action_server)
    async with _internal(app_settings, unused_tcp_port) as client:
        response = await client.get("/readyz")
        body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "action_server": "ok", f"rasa {rasa[1]}": "ok"}


async def test_readyz_names_what_failed(
    engine: Any,
    settings: Settings,
    rasa: tuple[StubRasa, str],
    unused_tcp_port_factory: Any,
) -> None:
    dead = f"http://127.0.0.1:{unused_tcp_port_factory()}"
    app_settings = replace(
        settings, rasa_url=f"{dead},{rasa[1]}", action_server_url=f"{dead}/webhook"
    )
    async with _internal(app_settings, unused_tcp_port_factory()) as client:
        response = await client.get("/readyz")
        body = await response.json()
    assert response.status == 503
    assert body["error"] == {"code": "not_ready", "message": "Failed: action_server"}
    assert body["checks"]["action_server"].startswith("failed: ClientConnectorError")
    # One Rasa worker down is reported; the other keeps the replica usable.
    assert body["checks"][f"rasa {dead}"].startswith("failed:")
    assert body["checks"][f"rasa {rasa[1]}"] == "ok"


async def test_readyz_fails_when_no_rasa_worker_is_usable(
    engine: Any, settings: Settings, action_server: str, unused_tcp_port_factory: Any
) -> None:
    dead = f"http://127.0.0.1:{unused_tcp_port_factory()}"
    app_settings = replace(settings, rasa_url=dead, action_server_url=action_server)
    async with _internal(app_settings, unused_tcp_port_factory()) as client:
        response = await client.get("/readyz")
        body = await response.json()
    assert response.status == 503
    assert body["error"]["message"] == "Failed: rasa (no worker usable)"


async def test_turns_go_to_another_rasa_worker_when_one_refuses_connections(
    engine: Any, settings: Settings, rasa: tuple[StubRasa, str], unused_tcp_port: int
) -> None:
    dead = f"http://127.0.0.1:{unused_tcp_port}"
    app = create_app(replace(settings, rasa_url=f"{dead},{rasa[1]}", metrics_token=METRICS_TOKEN))
    async with TestClient(TestServer(app)) as client:
        for n in range(4):  # whichever worker each conversation hashes to
            ws, _session = await _open(client)
            await ws.send_json({"type": "message", "text": f"hello {n}"})
            reply = await _until(ws, lambda f: f.get("sender") in ("bot", "system"))
            assert reply["text"] == f"echo: hello {n}"
            await ws.close()
        metrics = await (await client.get("/metrics", headers=METRICS_BEARER)).text()
    assert len(rasa[0].received) == 4
    assert 'shopbot_chat_turns_total{outcome="ok"} 4.0' in metrics
    assert "shopbot_chat_turn_seconds_count 4.0" in metrics


async def test_metrics_count_failed_turns_by_kind_and_open_sockets(
    client: TestClient[web.Request, web.Application], rasa: tuple[StubRasa, str]
) -> None:
    ws, _session = await _open(client)
    rasa[0].fail = True
    await ws.send_json({"type": "message", "text": "hi"})
    reply = await _until(ws, lambda f: f.get("sender") == "system")
    assert "try again in a moment" in reply["text"]
    # The metrics themselves (who may read them: tests/test_hardening.py).
    metrics = generate_latest(client.app[METRICS].registry).decode()
    assert 'shopbot_chat_errors_total{kind="rasa_http_500"} 1.0' in metrics
    assert 'shopbot_chat_turns_total{outcome="rasa_http_500"} 1.0' in metrics
    assert "shopbot_open_websockets 1.0" in metrics
    await ws.close()


def test_json_logs_carry_the_conversation_id() -> None:
    record = logging.LogRecord("bot.web.chat", logging.WARNING, __file__, 1, "rasa down", (), None)
    configure_logging("json")
    handler = logging.getLogger().handlers[0]
    token = conversation_id_var.set("c0ffee")
    try:
        assert handler.filter(record)
    finally:
        conversation_id_var.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["conversation_id"] == "c0ffee"
    assert line["message"] == "rasa down" and line["level"] == "WARNING"
    configure_logging("text")


async def test_shutdown_closes_sockets_with_a_reconnecting_notice(
    engine: Any, settings: Settings, rasa: tuple[StubRasa, str]
) -> None:
    app = create_app(replace(settings, rasa_url=rasa[1]))
    client = TestClient(TestServer(app))
    await client.start_server()
    ws, _session = await _open(client)
    await app.shutdown()  # what aiohttp runs on SIGTERM, before waiting for handlers
    closing = await ws.receive(timeout=5)
    assert closing.type is aiohttp.WSMsgType.CLOSE
    assert closing.data == WSCloseCode.GOING_AWAY
    assert closing.extra == "server restarting, reconnecting"
    await client.close()


# --- two web replicas on one database ---------------------------------------------------


@pytest.fixture
async def replicas(
    engine: Any, settings: Settings, rasa: tuple[StubRasa, str]
) -> AsyncIterator[
    tuple[TestClient[web.Request, web.Application], TestClient[web.Request, web.Application]]
]:
    from redis.asyncio import Redis

    channel_db = Redis.from_url(REDIS_URL)
    await channel_db.flushdb()
    await channel_db.aclose()
    # The per-address limits count in Redis across test runs (10-minute windows); they are
    # tested in test_client_limits.py, these tests are about the fan-out.
    config = replace(
        settings,
        rasa_url=rasa[1],
        redis_url=REDIS_URL,
        client_new_conversations=0,
        client_websockets=0,
    )
    async with (
        TestClient(TestServer(create_app(config))) as one,
        TestClient(TestServer(create_app(config))) as two,
    ):
        yield one, two


@needs_redis
async def test_a_push_reaches_the_socket_on_the_other_replica(
    replicas: tuple[
        TestClient[web.Request, web.Application], TestClient[web.Request, web.Application]
    ],
) -> None:
    one, two = replicas
    ws, session = await _open(two)
    conversation_id = next(iter(two.app[HUB_KEY]._sockets))
    assert one.app[HUB_KEY].connected(conversation_id) == 0

    await push(one.app, conversation_id, MessageSender.agent, "Hi, this is Sam.", author="Sam")

    frame = await _until(ws, lambda f: f.get("type") == "message")
    assert (frame["sender"], frame["text"]) == ("agent", "Hi, this is Sam.")
    await ws.close()
    assert session["type"] == "session"


@needs_redis
async def test_ending_a_conversation_closes_its_tabs_on_the_other_replica(
    replicas: tuple[
        TestClient[web.Request, web.Application], TestClient[web.Request, web.Application]
    ],
) -> None:
    one, two = replicas
    ws, _ = await _open(two)
    conversation_id = next(iter(two.app[HUB_KEY]._sockets))
    other, _ = await _open(two)

    await one.app[HUB_KEY].end(conversation_id)

    closed = await ws.receive(timeout=5)
    assert (closed.type, closed.extra) == (WSMsgType.CLOSE, "conversation erased")
    assert two.app[HUB_KEY].connected(conversation_id) == 0
    assert not other.closed
    await other.close()


@needs_redis
async def test_the_erase_command_closes_open_tabs_through_redis(
    replicas: tuple[
        TestClient[web.Request, web.Application], TestClient[web.Request, web.Application]
    ],
    settings: Settings,
) -> None:
    _one, two = replicas
    ws, _ = await _open(two)
    conversation_id = next(iter(two.app[HUB_KEY]._sockets))

    await end_live_tabs(replace(settings, redis_url=REDIS_URL), [conversation_id])

    closed = await ws.receive(timeout=5)
    assert (closed.type, closed.extra) == (WSMsgType.CLOSE, "conversation erased")


@needs_redis
async def test_a_message_resent_to_the_other_replica_reaches_rasa_once(
    replicas: tuple[
        TestClient[web.Request, web.Application], TestClient[web.Request, web.Application]
    ],
    rasa: tuple[StubRasa, str],
) -> None:
    one, two = replicas
    ws, session = await _open(one)
    await ws.send_json({"type": "message", "text": "4", "client_id": "m-1"})
    await _until(ws, lambda f: f.get("sender") == "bot")
    await ws.close()
    # The customer reconnects to the other replica and the widget re-sends the message.
    ws2, resumed = await _open(two, session["token"])
    await ws2.send_json({"type": "message", "text": "4", "client_id": "m-1"})
    ack = await _until(ws2, lambda f: f.get("type") == "ack")
    assert ack["duplicate"] is True
    await asyncio.sleep(0.2)
    assert [r["message"] for r in rasa[0].received] == ["4"]
    assert [m["text"] for m in resumed["history"]] == ["4", "echo: 4"]
    await ws2.close()


async def test_turns_beyond_the_in_flight_limit_queue_in_the_web_service(
    engine: Any, settings: Settings
) -> None:
    running, peak = 0, 0

    async def webhook(request: web.Request) -> web.Response:
        nonlocal running, peak
        body = await request.json()
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.2)
        running -= 1
        return web.json_response([{"recipient_id": body["sender"], "text": "ok"}])

    stub = web.Application()
    stub.router.add_post("/webhooks/rest/webhook", webhook)
    async with TestServer(stub) as rasa_server:
        app = create_app(
            replace(
                settings, rasa_url=str(rasa_server.make_url("")).rstrip("/"), rasa_max_in_flight=2
            )
        )
        async with TestClient(TestServer(app)) as client:

            async def one_turn(n: int) -> str:
                ws, _session = await _open(client)
                await ws.send_json({"type": "message", "text": f"m{n}"})
                reply = await _until(ws, lambda f: f.get("sender") in ("bot", "system"))
                await ws.close()
                return str(reply["text"])

            replies = await asyncio.gather(*(one_turn(n) for n in range(6)))
    assert replies == ["ok"] * 6
    assert peak == 2
