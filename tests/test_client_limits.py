"""Per-client limits (issue #22, bot/web/client_limits.py): new conversations and chat
WebSocket openings per client address, X-Forwarded-For only from TRUSTED_PROXIES, counters
in Redis shared by replicas when REDIS_URL is set."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.config import ConfigError, Settings
from bot.storage.models import Conversation
from bot.web.app import create_app
from bot.web.client_limits import TOO_MANY_CONVERSATIONS, TOO_MANY_SOCKETS
from tests.conftest import StubRasa
from tests.test_ops import REDIS_URL, needs_redis

Client = TestClient[Any, Any]


@pytest.fixture
def limited(engine: Any, settings: Settings, rasa: tuple[StubRasa, str]) -> Callable[..., Any]:
    @asynccontextmanager
    async def make(**changes: Any) -> AsyncIterator[Client]:
        app = create_app(replace(settings, rasa_url=rasa[1], **changes))
        async with TestClient(TestServer(app)) as client:
            yield client

    return make


async def _hello(
    client: Client, token: str | None = None, forwarded: str | None = None
) -> tuple[Any, dict[str, Any]]:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    ws = await client.ws_connect("/ws", headers=headers)
    await ws.send_json({"type": "hello", "token": token})
    return ws, await ws.receive_json(timeout=5)


async def _conversations(session_factory: Any) -> int:
    async with session_factory() as db:
        return int(await db.scalar(select(func.count()).select_from(Conversation)) or 0)


async def test_new_conversations_per_address_are_limited_with_a_clear_message(
    limited: Callable[..., Any], session_factory: Any
) -> None:
    async with limited(client_new_conversations=3) as client:
        tokens = []
        for _ in range(3):
            ws, session = await _hello(client)
            assert session["type"] == "session"
            tokens.append(session["token"])
            await ws.close()
        ws, refused = await _hello(client)
        assert refused == {
            "type": "error",
            "error": {"code": "rate_limited", "message": TOO_MANY_CONVERSATIONS},
            "reconnect": True,  # this socket has no session: the clients offer "Try again"
        }
        await ws.close()
        assert await _conversations(session_factory) == 3  # the fourth was rolled back
        # Coming back to a conversation one has is not a new one: still let in.
        ws, resumed = await _hello(client, tokens[0])
        assert resumed["type"] == "session" and resumed["token"] == tokens[0]
        await ws.close()


async def test_websocket_openings_per_address_are_limited(limited: Callable[..., Any]) -> None:
    async with limited(client_websockets=2) as client:
        for _ in range(2):
            ws = await client.ws_connect("/ws")
            await ws.close()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/ws")
        assert refused.value.status == 429
        response = await client.get(
            "/ws", headers={"Connection": "Upgrade", "Upgrade": "websocket"}
        )
        assert response.status == 429
        assert await response.json() == {
            "type": "error",
            "error": {"code": "rate_limited", "message": TOO_MANY_SOCKETS},
        }


async def test_a_forged_forwarded_for_does_not_escape_the_limit(
    limited: Callable[..., Any],
) -> None:
    # The peer (127.0.0.1) is no trusted proxy: X-Forwarded-For is the client's own words.
    async with limited(client_new_conversations=2) as client:
        for n in range(2):
            ws, session = await _hello(client, forwarded=f"203.0.113.{n}")
            assert session["type"] == "session"
            await ws.close()
        ws, refused = await _hello(client, forwarded="203.0.113.99")
        assert refused["error"]["code"] == "rate_limited"
        await ws.close()


async def test_behind_a_trusted_proxy_each_client_has_its_own_count(
    limited: Callable[..., Any],
) -> None:
    async with limited(client_new_conversations=1, trusted_proxies=("127.0.0.0/8",)) as client:
        for client_ip in ("198.51.100.1", "198.51.100.2"):
            ws, session = await _hello(client, forwarded=client_ip)
            assert session["type"] == "session", client_ip
            await ws.close()
        # A client prepending an address cannot change what our proxy appended (right-most).
        ws, refused = await _hello(client, forwarded="192.0.2.50, 198.51.100.1")
        assert refused["error"]["code"] == "rate_limited"
        await ws.close()
        ws, session = await _hello(client, forwarded="198.51.100.1, 198.51.100.3")
        assert session["type"] == "session"
        await ws.close()


@needs_redis
async def test_replicas_share_the_counters_in_redis(limited: Callable[..., Any]) -> None:
    client_ip = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    changes = {
        "client_new_conversations": 2,
        "trusted_proxies": ("127.0.0.1",),
        "redis_url": REDIS_URL,
    }
    async with limited(**changes) as replica_1, limited(**changes) as replica_2:
        for replica in (replica_1, replica_2):
            ws, session = await _hello(replica, forwarded=client_ip)
            assert session["type"] == "session"
            await ws.close()
        ws, refused = await _hello(replica_1, forwarded=client_ip)
        assert refused["error"]["code"] == "rate_limited"
        await ws.close()


def test_the_limits_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert (defaults.client_new_conversations, defaults.client_websockets) == (20, 50)
    assert defaults.client_limit_window_seconds == 600 and defaults.trusted_proxies == ()
    monkeypatch.setenv("CLIENT_NEW_CONVERSATIONS", "5")
    monkeypatch.setenv("CLIENT_WEBSOCKETS", "0")  # off
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.2, 172.16.0.0/12")
    settings = Settings.from_env()
    assert (settings.client_new_conversations, settings.client_websockets) == (5, 0)
    assert settings.trusted_proxies == ("10.0.0.2", "172.16.0.0/12")
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        Settings(trusted_proxies=("nginx",))
