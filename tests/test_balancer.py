"""The actions balancer: round-robin over the replicas, and a request that a dead or dying
replica did not answer goes to the next one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.balancer import create_app


async def _replica(name: str, received: list[str], crash: bool = False) -> TestServer:
    async def webhook(request: web.Request) -> web.Response:
        body = await request.json()
        received.append(name)
        if crash:  # dies mid-request, as a killed process would
            assert request.transport is not None
            request.transport.close()
        return web.json_response({"events": [], "responses": [{"text": f"{name}: {body['x']}"}]})

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    server = TestServer(app)
    await server.start_server()
    return server


@pytest.fixture
async def received() -> AsyncIterator[list[str]]:
    yield []


async def test_round_robin_over_live_replicas(received: list[str]) -> None:
    one, two = await _replica("one", received), await _replica("two", received)
    balancer = create_app([str(one.make_url("")), str(two.make_url(""))], timeout=5)
    async with TestClient(TestServer(balancer)) as client:
        for n in range(4):
            response = await client.post("/webhook", json={"x": n})
            assert response.status == 200
    assert sorted(received) == ["one", "one", "two", "two"]
    await one.close()
    await two.close()


async def test_dead_and_dying_replicas_are_skipped(
    received: list[str], unused_tcp_port: int
) -> None:
    dying, live = await _replica("dying", received, crash=True), await _replica("live", received)
    dead = f"http://127.0.0.1:{unused_tcp_port}"
    balancer = create_app([dead, str(dying.make_url("")), str(live.make_url(""))], timeout=5)
    async with TestClient(TestServer(balancer)) as client:
        for n in range(3):
            response = await client.post("/webhook", json={"x": n})
            assert response.status == 200
            assert (await response.json())["responses"] == [{"text": f"live: {n}"}]
        status = await (await client.get("/_balancer")).json()
    assert received.count("live") == 3
    assert status["retries"] >= 2
    await dying.close()
    await live.close()


async def test_no_replica_left_is_a_503(unused_tcp_port: int) -> None:
    balancer = create_app([f"http://127.0.0.1:{unused_tcp_port}"], timeout=2)
    async with TestClient(TestServer(balancer)) as client:
        response = await client.post("/webhook", json={"x": 1})
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "no_upstream"


async def test_the_action_server_token_passes_through() -> None:
    """Rasa's `X-Action-Server-Token` (issue #16) reaches the replica unchanged."""
    seen: list[str | None] = []

    async def webhook(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Action-Server-Token"))
        return web.json_response({"events": [], "responses": []})

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    replica = TestServer(app)
    await replica.start_server()
    balancer = create_app([str(replica.make_url(""))], timeout=5)
    async with TestClient(TestServer(balancer)) as client:
        response = await client.post(
            "/webhook", json={}, headers={"X-Action-Server-Token": "tok-123"}
        )
        assert response.status == 200
    assert seen == ["tok-123"]
    await replica.close()
