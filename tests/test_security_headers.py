"""Security headers on every kind of response, no inline script or style in our pages, body
and frame size limits, login throttling and lockout, Rasa and the action server on
loopback with Rasa's HTTP API behind its token."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from sqlalchemy import func, select

from bot import launcher
from bot.domain import staff
from bot.domain.enums import StaffRole
from bot.storage.models import Conversation
from bot.web.app import STATIC_DIR
from bot.web.auth import LoginThrottle
from bot.web.security import HSTS, PERMISSIONS_POLICY, content_security_policy
from tests.staff_helpers import (
    PASSWORD,
    ROLE_EMAILS,
    create_api_token,
    create_staff,
    sign_in,
)

Client = TestClient[Any, Any]
LOGIN_HEADERS = {"X-Requested-With": "console"}

EXPECTED_CSP = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "manifest-src": "'self'",
    "form-action": "'self'",
    "base-uri": "'none'",
    "object-src": "'none'",
    "frame-src": "'none'",
    "frame-ancestors": "'none'",
}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'headers.db'}"  # headers do not depend on it


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        staff, "password_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


def _csp(header: str) -> dict[str, str]:
    directives = [d.strip().split(" ", 1) for d in header.split(";")]
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


def _assert_secure(response: aiohttp.ClientResponse, *, cross_origin: bool = False) -> None:
    headers = response.headers
    csp = _csp(headers["Content-Security-Policy"])
    assert response.url.host is not None
    host = response.url.host + (f":{response.url.port}" if response.url.port else "")
    assert csp == {**EXPECTED_CSP, "connect-src": f"'self' ws://{host} wss://{host}"}
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Permissions-Policy"] == PERMISSIONS_POLICY
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Cross-Origin-Resource-Policy"] == (
        "cross-origin" if cross_origin else "same-origin"
    )
    assert "aiohttp" not in headers.get("Server", "").lower()
    assert "Strict-Transport-Security" not in headers  # plain http here


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 200),
        ("GET", "/static/chat.css", 200),
        ("GET", "/demo/shop/", 200),
        ("GET", "/demo/shop", 302),  # a raised redirect
        ("GET", "/console/login", 200),
        ("GET", "/console/", 302),  # the auth middleware's redirect
        ("GET", "/console/api/me", 401),  # a JSON error from a sub-app middleware
        ("GET", "/api/openapi.json", 200),
        ("GET", "/api/tokens", 401),
        ("GET", "/no/such/page", 404),  # the router's own answer
        ("DELETE", "/", 405),
        ("GET", "/ws", 400),  # not a WebSocket upgrade
    ],
)
async def test_every_kind_of_response_carries_the_headers(
    client: Client, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path, allow_redirects=False)
    assert response.status == status
    _assert_secure(response)


async def test_widget_assets_may_be_loaded_by_the_shops_pages(client: Client) -> None:
    for path in ("/widget.js", "/widget.css"):
        response = await client.get(path)
        assert response.status == 200
        _assert_secure(response, cross_origin=True)


async def test_the_favicon_is_served_not_a_404(client: Client) -> None:
    response = await client.get("/favicon.ico")
    assert (response.status, response.headers["Content-Type"]) == (200, "image/svg+xml")
    assert (await response.read()).startswith(b"<svg")
    _assert_secure(response)


async def test_json_is_never_cached(client: Client) -> None:
    for path in ("/api/openapi.json", "/api/tokens", "/console/api/me"):
        assert (await client.get(path)).headers["Cache-Control"] == "no-store"


async def test_hsts_only_over_https(client: Client) -> None:
    response = await client.get("/", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["Strict-Transport-Security"] == HSTS
    assert "Strict-Transport-Security" not in (await client.get("/")).headers


async def test_websocket_handshake_carries_the_headers(client: Client) -> None:
    async with client.ws_connect("/ws") as ws:
        assert ws._response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in ws._response.headers["Content-Security-Policy"]


def test_a_forged_host_header_cannot_add_csp_directives() -> None:
    forged = content_security_policy("evil.example; script-src *")
    assert "script-src *" not in forged and "evil" not in forged
    assert _csp(forged)["connect-src"] == "'self'"
    assert _csp(content_security_policy("[::1]:8000"))["connect-src"] == (
        "'self' ws://[::1]:8000 wss://[::1]:8000"
    )


# ---- our pages have nothing the CSP would block ------------------------------------------

INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle\s*=|\son[a-z]+\s*=|javascript:", re.I
)


def test_static_pages_have_no_inline_script_style_or_handlers() -> None:
    pages = sorted(STATIC_DIR.rglob("*.html"))
    assert len(pages) >= 4
    for page in pages:
        assert INLINE.findall(page.read_text(encoding="utf-8")) == [], page


async def test_server_rendered_pages_have_no_inline_script_style_or_handlers(
    client: Client,
) -> None:
    for path in ("/demo/shop/", "/demo/shop/orders", "/demo/shop/product/KIT-0142"):
        response = await client.get(path, headers={"Cookie": "demo_customer=C1001"})
        assert response.status == 200
        assert INLINE.findall(await response.text()) == [], path


def test_scripts_do_not_use_eval_or_html_injection() -> None:
    forbidden = re.compile(
        r"\beval\(|new Function\(|\.innerHTML\s*=|\.outerHTML\s*=|insertAdjacentHTML|document\.write"
    )
    ours = [p for p in STATIC_DIR.rglob("*.js") if "vendor" not in p.parts]
    assert len(ours) >= 5
    for script in ours:
        assert forbidden.findall(script.read_text(encoding="utf-8")) == [], script


# ---- size limits -------------------------------------------------------------------------


async def test_request_bodies_are_limited(client: Client, session_factory: Any) -> None:
    big = {"email": "x" * 70_000, "password": "y"}
    response = await client.post("/console/api/login", json=big, headers=LOGIN_HEADERS)
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "payload_too_large"
    await create_staff(session_factory)
    csrf = await sign_in(client, StaffRole.admin)
    response = await client.post("/api/tokens", json={"name": "x" * 70_000}, headers=csrf)
    assert response.status == 413


async def test_chat_frames_are_limited(client: Client) -> None:
    async with client.ws_connect("/ws") as ws:
        await ws.send_str("x" * (64 * 1024 + 1))
        frame = await ws.receive(timeout=5)
        assert frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
        assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_a_loop_of_hellos_is_cut_off(client: Client, session_factory: Any) -> None:
    async with client.ws_connect("/ws") as ws:
        for _ in range(3):
            await ws.send_json({"type": "hello"})
            assert (await ws.receive_json(timeout=5))["type"] == "session"
        await ws.send_json({"type": "hello"})
        refused = await ws.receive_json(timeout=5)
        assert refused["error"]["code"] == "too_many_hellos"
        assert (await ws.receive(timeout=5)).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    async with session_factory() as db:
        assert await db.scalar(select(func.count()).select_from(Conversation)) == 3


async def test_console_frames_are_limited(client: Client, session_factory: Any) -> None:
    await create_staff(session_factory)
    await sign_in(client, StaffRole.agent)
    async with client.ws_connect("/console/ws") as ws:
        await ws.send_str('{"type": "watch", "conversation_id": "' + "x" * 5000 + '"}')
        frame = await ws.receive(timeout=5)
        while frame.type is WSMsgType.TEXT:  # skip live updates sent meanwhile
            frame = await ws.receive(timeout=5)
        assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


# ---- SQL: user input only ever travels as bound parameters --------------------------------

INJECTIONS = (
    "' OR '1'='1",
    "'; DROP TABLE feedback; --",
    '" OR 1=1 --',
    "%' UNION SELECT email, name FROM customers --",
    "\\'; SELECT pg_sleep(5); --",
)


async def test_search_filters_and_sort_keys_do_not_reach_sql_as_code(
    client: Client, session_factory: Any
) -> None:
    token = await create_api_token(session_factory, StaffRole.cx_manager)
    headers = {"Authorization": f"Bearer {token}"}
    for payload in INJECTIONS:
        found = await client.get("/api/feedback", params={"q": payload}, headers=headers)
        assert found.status == 200, await found.text()
        assert (await found.json())["total"] == 0  # a literal search, matching nothing
        for name in ("sort", "stage", "theme", "customer", "product"):
            refused = await client.get("/api/feedback", params={name: payload}, headers=headers)
            assert refused.status == 422, (name, await refused.text())
    async with session_factory() as db:  # the tables are all still there
        assert await db.scalar(select(func.count()).select_from(Conversation)) == 0


# ---- login throttling and lockout --------------------------------------------------------


async def _login(client: Client, email: str, password: str, **headers: str) -> int:
    response = await client.post(
        "/console/api/login",
        json={"email": email, "password": password},
        headers={**LOGIN_HEADERS, **headers},
    )
    return response.status


async def test_forged_forwarding_headers_do_not_escape_the_login_limit(
    client: Client, session_factory: Any
) -> None:
    await create_staff(session_factory)
    email = ROLE_EMAILS[StaffRole.agent]
    for n in range(10):
        forged = {"X-Forwarded-For": f"203.0.113.{n}", "X-Real-IP": f"198.51.100.{n}"}
        assert await _login(client, email, "wrong-password", **forged) == 401
    fresh = {"X-Forwarded-For": "192.0.2.77", "Forwarded": "for=192.0.2.77"}
    assert await _login(client, email, PASSWORD, **fresh) == 429


def test_account_is_locked_after_failures_from_many_addresses() -> None:
    throttle = LoginThrottle(max_failures=10, account_max_failures=50, client_max_failures=30)
    for n in range(50):
        assert throttle.refusal(f"10.0.{n}.1", "admin@example.com") is None
        throttle.failed_login(f"10.0.{n}.1", "admin@example.com")
    locked = throttle.refusal("10.9.9.9", "admin@example.com")
    assert locked is not None and "locked" in locked
    assert throttle.refusal("10.9.9.9", "agent@example.com") is None  # others unaffected


def test_one_address_cannot_spray_many_accounts() -> None:
    throttle = LoginThrottle()
    for n in range(30):
        throttle.failed_login("10.1.1.1", f"user{n}@example.com")
    refusal = throttle.refusal("10.1.1.1", "someone-else@example.com")
    assert refusal is not None and "network" in refusal
    assert throttle.refusal("10.2.2.2", "someone-else@example.com") is None


def test_failures_expire_with_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("bot.web.auth.time.monotonic", lambda: now[0])
    throttle = LoginThrottle(max_failures=2, window_seconds=60)
    throttle.failed_login("10.1.1.1", "a@example.com")
    throttle.failed_login("10.1.1.1", "a@example.com")
    assert throttle.refusal("10.1.1.1", "a@example.com") is not None
    now[0] += 61
    assert throttle.refusal("10.1.1.1", "a@example.com") is None


# ---- Rasa and the action server: loopback only, Rasa's API behind its token ---------------


def _flag(command: list[str], name: str) -> str:
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


def test_embedded_stack_binds_loopback_and_protects_rasas_api() -> None:
    secrets = {
        "RASA_TOKEN": "secret-token-1",
        "RASA_CHANNEL_SECRET": "channel-secret-1",
        "ACTION_SERVER_TOKEN": "action-token-1",
    }
    env = launcher._environment(launcher.StackPorts(), secrets)
    commands = launcher._commands(launcher.StackPorts(), launcher.MODEL, env)
    rasa = commands["rasa"]
    assert _flag(rasa, "--interface") == "127.0.0.1"
    # The secrets go by environment only (`python -m rasa_ext run` adds --auth-token itself),
    # never on a command line, where `ps` shows them to every user (issue #16).
    assert "--enable-api" in rasa and "--auth-token" not in rasa
    assert {name: env[name] for name in secrets} == secrets
    for command in commands.values():
        assert not set(secrets.values()) & set(command)
    assert commands["actions"][1:3] == ["-m", "actions.server"]  # checks the action token
    assert "--remote-storage" not in rasa  # models only from the local disk
    assert env["SANIC_HOST"] == "127.0.0.1"  # rasa_sdk's action server binds to it
    assert env["RASA_URL"].startswith("http://127.0.0.1:")


def test_production_stack_binds_loopback_and_protects_rasas_api() -> None:
    env = {"RASA_TOKEN": "secret-token-2"}
    for name, (command, _health, extra) in launcher._prod_commands(
        launcher.ProdPorts(), env
    ).items():
        assert "secret-token-2" not in command  # `python -m rasa_ext run` reads RASA_TOKEN
        if name.startswith("rasa-"):
            assert _flag(command, "--interface") == "127.0.0.1"
            assert "--enable-api" in command and "--auth-token" not in command
        if name.startswith("actions-"):
            assert command[1:3] == ["-m", "actions.server"]  # checks the action token
        assert "0.0.0.0" not in command and "0.0.0.0" not in extra.values()


def test_the_production_nginx_listens_on_loopback_only() -> None:
    from bot import proxy

    site = proxy.render_site(
        ["127.0.0.1:8000"], ["127.0.0.1:5055"], "127.0.0.1:8080", "127.0.0.1:5050"
    )
    listens = [line.split()[1] for line in site.splitlines() if line.strip().startswith("listen")]
    assert listens == ["127.0.0.1:8080;", "127.0.0.1:5050;"]
