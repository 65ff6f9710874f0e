"""nginx in front of the web replicas and the action servers (bot/proxy.py, deploy/nginx.conf;
issue #25 item 2), run for real on the machine's nginx against small aiohttp replicas:
round-robin and failover of action calls (a dead and a dying replica), the action token
passing through, web retries for idempotent requests only, WebSocket upgrade."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot import proxy
from bot.launcher import free_port

NGINX = proxy.find_nginx()
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")


def test_the_template_renders_every_variable_and_keeps_nginx_variables() -> None:
    site = proxy.render_site(["127.0.0.1:1", "127.0.0.1:2"], ["127.0.0.1:3"], "127.0.0.1:4", "5")
    assert "${" not in site
    assert "server 127.0.0.1:1 max_fails=1 fail_timeout=5s; server 127.0.0.1:2" in site
    assert "listen 127.0.0.1:4;" in site and "listen 5;" in site
    assert "$http_upgrade" in site and "$proxy_add_x_forwarded_for" in site
    # Retries: every method for the idempotent action calls, idempotent methods for the web.
    web_block, actions_block = site.split("listen 127.0.0.1:4;")[1].split("listen 5;")
    directive = "proxy_next_upstream error timeout http_502 http_503 http_504"
    assert f"{directive};" in web_block and f"{directive} non_idempotent;" in actions_block


def test_a_missing_nginx_is_named_with_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NGINX", "/nonexistent/nginx")
    with pytest.raises(SystemExit) as stopped:
        proxy.require_nginx()
    assert "apt-get install -y nginx" in str(stopped.value)


@needs_nginx
def test_nginx_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    assert NGINX is not None
    config = proxy.write_config(
        tmp_path,
        tmp_path / "error.log",
        web=["127.0.0.1:1", "127.0.0.1:2"],
        actions=["127.0.0.1:3", "127.0.0.1:4"],
        web_listen=f"127.0.0.1:{free_port()}",
        actions_listen=f"127.0.0.1:{free_port()}",
    )
    checked = subprocess.run(
        [*proxy.command(NGINX, config), "-t"], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stderr


# --- nginx running against small replicas ---------------------------------------------------


class Replica:
    """A web or action server replica that records what reached it; `crash` drops every
    request mid-way (as a killed process does)."""

    def __init__(self, name: str, crash: bool = False) -> None:
        self.name, self.crash = name, crash
        self.received: list[tuple[str, str, str | None]] = []  # method, path, token
        app = web.Application()
        app.router.add_route("*", "/ws", self.socket)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1", port=free_port())

    def calls(self, method: str = "POST") -> list[tuple[str, str, str | None]]:
        return [r for r in self.received if r[0] == method]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        token = request.headers.get("X-Action-Server-Token")
        self.received.append((request.method, request.path, token))
        if self.crash:
            assert request.transport is not None
            request.transport.close()
        return web.json_response({"replica": self.name})

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(f"{self.name}: {message.data}")
        return ws


async def _running(*replicas: Replica) -> None:
    for replica in replicas:
        await replica.server.start_server()


def _wait_listening(port: int, timeout: float = 15) -> None:
    """Until nginx accepts connections (a TCP connect: no request reaches a replica)."""
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nginx not listening on {port}"
            time.sleep(0.05)


class Proxy:
    def __init__(self, tmp: Path, web_servers: list[str], action_servers: list[str]) -> None:
        assert NGINX is not None
        self.web_port, self.actions_port = free_port(), free_port()
        config = proxy.write_config(
            tmp / "nginx",
            tmp / "nginx-error.log",
            web=web_servers,
            actions=action_servers,
            web_listen=f"127.0.0.1:{self.web_port}",
            actions_listen=f"127.0.0.1:{self.actions_port}",
        )
        self.log = tmp / "nginx-error.log"
        self.process = subprocess.Popen(proxy.command(NGINX, config))

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def actions(self) -> str:
        return f"http://127.0.0.1:{self.actions_port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[Any]:
    started: list[Proxy] = []

    async def start(web_servers: list[str], action_servers: list[str]) -> Proxy:
        running = Proxy(tmp_path, web_servers, action_servers)
        started.append(running)
        await asyncio.to_thread(_wait_listening, running.actions_port)
        await asyncio.to_thread(_wait_listening, running.web_port)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _dead() -> str:
    return f"127.0.0.1:{free_port()}"


@needs_nginx
async def test_action_calls_round_robin_and_the_token_passes_through(
    start_proxy: Any, http: aiohttp.ClientSession
) -> None:
    one, two = Replica("one"), Replica("two")
    await _running(one, two)
    running = await start_proxy([_dead()], [one.address, two.address])
    for n in range(4):
        async with http.post(
            running.actions + "/webhook", json={"x": n}, headers={"X-Action-Server-Token": "t-1"}
        ) as response:
            assert response.status == 200
    assert (len(one.calls()), len(two.calls())) == (2, 2)
    assert {r[2] for r in one.calls() + two.calls()} == {"t-1"}


@needs_nginx
async def test_a_large_body_passes_from_a_directory_only_its_owner_may_enter(
    start_proxy: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A fresh clone under `mktemp -d` (mode 0700) run as root: nginx's workers had dropped
    to `nobody`, could not write the body of a call larger than their buffer (Rasa's
    tracker to the action servers) and answered 500; the fault test lost every turn."""
    os.chmod(tmp_path, 0o700)  # before anything runs: the mode a `mktemp -d` gets
    one = Replica("one")
    await _running(one)
    running = await start_proxy([_dead()], [one.address])
    body = {"tracker": "x" * 200_000}
    async with http.post(running.actions + "/webhook", json=body) as response:
        assert response.status == 200
    assert len(one.calls()) == 1


@needs_nginx
async def test_action_calls_fail_over_from_dead_and_dying_replicas(
    start_proxy: Any, http: aiohttp.ClientSession
) -> None:
    dying, live = Replica("dying", crash=True), Replica("live")
    await _running(dying, live)
    running = await start_proxy([_dead()], [dying.address, live.address])
    for n in range(4):  # the dying replica got a call that was then sent to the live one
        async with http.post(running.actions + "/webhook", json={"x": n}) as response:
            assert response.status == 200
            assert (await response.json()) == {"replica": "live"}
    assert len(live.calls()) == 4 and len(dying.calls()) >= 1
    dead_first = await start_proxy([_dead()], [_dead(), live.address])
    for n in range(3):
        async with http.post(dead_first.actions + "/webhook", json={"x": n}) as response:
            assert response.status == 200
    assert len(live.calls()) == 7


@needs_nginx
async def test_web_retries_idempotent_requests_only(
    start_proxy: Any, http: aiohttp.ClientSession
) -> None:
    dying, live = Replica("dying", crash=True), Replica("live")
    await _running(dying, live)
    running = await start_proxy([dying.address, live.address], [_dead()])
    outcomes = []
    for n in range(4):
        async with http.post(running.web + "/api/something", json={"x": n}) as response:
            outcomes.append(response.status)
    # A POST that reached the dying replica is not sent again (it may have been applied):
    # the client gets the 502 and decides; the others reached the live replica once each.
    assert outcomes.count(502) == len(dying.calls()) >= 1
    assert outcomes.count(200) == len(live.calls())
    again = await start_proxy([dying.address, live.address], [_dead()])
    for _ in range(4):
        async with http.get(again.web + "/healthz") as response:
            assert response.status == 200  # a GET is retried on the live replica
            assert (await response.json()) == {"replica": "live"}
    assert dying.calls("GET")


@needs_nginx
async def test_websockets_are_upgraded_through_nginx(
    start_proxy: Any, http: aiohttp.ClientSession
) -> None:
    only = Replica("only")
    await _running(only)
    running = await start_proxy([only.address], [_dead()])
    async with http.ws_connect(running.web.replace("http", "ws") + "/ws") as ws:
        await ws.send_str("hello")
        assert (await ws.receive_str()) == "only: hello"
        await ws.send_str("again")
        assert (await ws.receive_str()) == "only: again"
