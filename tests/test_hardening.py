"""Security round two (issue #22): no leaks from aiohttp's own errors, `/readyz` or
`/metrics`; origins of both WebSockets; staff session idle timeout and the list of one's
own sessions. (What agents may read: tests/test_staff_access.py.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import aiohttp
import pyotp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from sqlalchemy import select, update

from bot.config import ConfigError, Settings
from bot.domain import staff
from bot.domain.enums import StaffRole
from bot.storage.models import AuditLog, StaffSession, StaffUser, utcnow
from bot.web.app import create_app
from bot.web.security import PERMISSIONS_POLICY, SERVER_NAME
from bot.web.server import HardenedAppRunner, start_sites
from tests.conftest import StubRasa
from tests.staff_helpers import PASSWORD, create_staff, sign_in

Client = TestClient[Any, Any]
METRICS_TOKEN = "metrics-token-" + "m" * 30


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        staff, "password_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture
async def served(
    engine: Any,
    settings: Settings,
    rasa: tuple[StubRasa, str],
    unused_tcp_port_factory: Callable[[], int],
) -> AsyncIterator[Settings]:
    """create_app() served as `python -m bot serve` does: public port and internal ops port."""
    served_settings = replace(
        settings,
        rasa_url=rasa[1],
        web_port=unused_tcp_port_factory(),
        ops_port=unused_tcp_port_factory(),
        metrics_token=METRICS_TOKEN,
    )
    runner = HardenedAppRunner(create_app(served_settings))
    await runner.setup()
    await start_sites(runner, served_settings)
    yield served_settings
    await runner.cleanup()


async def _raw(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return status_line, headers, body


MALFORMED = [
    pytest.param(b"G<script>alert(1)</script>T / HTTP/1.1\r\nHost: x\r\n\r\n", id="bad-method"),
    pytest.param(b"GET /<script>alert(1)</script> HTTP/9.9\r\nHost: x\r\n\r\n", id="bad-version"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: x\r\n<script>alert(1)</script>\r\n\r\n", id="bad-header"
    ),
    pytest.param(b"GET /" + b"<script>" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", id="long-line"),
]


@pytest.mark.parametrize("request_bytes", MALFORMED)
async def test_aiohttps_own_errors_carry_our_headers_and_echo_nothing(
    served: Settings, request_bytes: bytes
) -> None:
    status_line, headers, body = await _raw(served.web_port, request_bytes)
    status = int(status_line.split(" ")[1])
    assert 400 <= status < 500, status_line
    assert headers["server"] == SERVER_NAME
    assert "python" not in str(headers).lower() and "aiohttp" not in str(headers).lower()
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["permissions-policy"] == PERMISSIONS_POLICY
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["cross-origin-resource-policy"] == "same-origin"
    assert b"script" not in body.lower() and b"alert" not in body
    assert body.decode().startswith(f"{status} ")


async def test_served_app_names_no_version_on_any_answer(served: Settings) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/healthz", "/no/such/page", "/static/chat.css"):
            async with http.get(f"http://127.0.0.1:{served.web_port}{path}") as response:
                assert response.headers["Server"] == SERVER_NAME, path


# ---- /readyz and /metrics ------------------------------------------------------------------


async def test_readyz_answers_only_ready_or_not_on_the_public_port(
    served: Settings, rasa: tuple[StubRasa, str]
) -> None:
    # The action server of these settings is not running: not ready.
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{served.web_port}/readyz") as response:
            public = await response.json()
            assert response.status == 503
        async with http.get(f"http://127.0.0.1:{served.ops_port}/readyz") as response:
            internal = await response.json()
            assert response.status == 503
    assert public == {
        "status": "not_ready",
        "error": {"code": "not_ready", "message": "Not ready."},
    }
    assert internal["error"]["message"] == "Failed: action_server"
    assert internal["checks"]["action_server"].startswith("failed: ClientConnectorError")
    assert internal["checks"][f"rasa {rasa[1]}"] == "ok"


async def test_readyz_details_for_an_admin_session_only(
    client: Client, session_factory: Any
) -> None:
    await create_staff(session_factory)
    assert set(await (await client.get("/readyz")).json()) == {"status", "error"}
    for role in (StaffRole.agent, StaffRole.cx_manager):
        await sign_in(client, role)
        assert set(await (await client.get("/readyz")).json()) == {"status", "error"}, role
    await sign_in(client, StaffRole.admin)
    body = await (await client.get("/readyz")).json()
    assert {"status", "checks", "seconds", "error"} == set(body)
    assert body["checks"]["database"] == "ok"


async def test_metrics_need_the_token_or_the_internal_port(served: Settings) -> None:
    public = f"http://127.0.0.1:{served.web_port}/metrics"
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}):
            async with http.get(public, headers=headers) as response:
                assert response.status == 401, headers
                assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
                assert "shopbot_" not in await response.text()
        bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        async with http.get(public, headers=bearer) as response:
            assert response.status == 200
            assert "shopbot_open_websockets" in await response.text()
        async with http.get(f"http://127.0.0.1:{served.ops_port}/metrics") as response:
            assert response.status == 200
            assert "shopbot_open_websockets" in await response.text()


async def test_metrics_without_a_token_setting_are_internal_only(client: Client) -> None:
    response = await client.get("/metrics", headers={"Authorization": "Bearer "})
    assert response.status == 401
    assert "OPS_PORT" in (await response.json())["error"]["message"]


def test_the_ops_port_must_differ_from_the_web_port() -> None:
    with pytest.raises(ConfigError, match="OPS_PORT"):
        Settings(web_port=8000, ops_port=8000)


def test_production_refuses_a_short_metrics_token() -> None:
    def production(metrics_token: str | None = None) -> Settings:
        good = "s" * 40
        return replace(
            Settings(),
            environment="production",
            rasa_token=f"rasa-{good}",
            rasa_channel_secret=f"channel-{good}",
            action_server_token=f"actions-{good}",
            widget_secret=f"widget-{good}",
            events_secret=f"events-{good}",
            metrics_token=metrics_token,
        )

    assert production().metrics_token is None  # optional: then internal port only
    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        production(metrics_token="short")


# ---- origins of the two WebSockets -----------------------------------------------------------

UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def _origins(client: Client) -> tuple[str, list[str]]:
    """Our own origin, and look-alikes that are not it."""
    host, port = client.server.host, client.server.port
    assert port is not None
    ours = f"http://{host}:{port}"
    return ours, [
        f"ftp://{host}:{port}",
        f"https://{host}:{port}",  # plain http here: another scheme is another origin
        f"http://{host}:{port + 1}",
        f"http://{host}",
        f"http://evil.example:{port}",
        f"http://{host}:{port}@evil.example",
        "null",
        "https://evil.example",
    ]


async def test_the_chat_socket_checks_scheme_host_and_port_of_the_origin(client: Client) -> None:
    ours, foreign = _origins(client)
    for origin in foreign:
        response = await client.get("/ws", headers={**UPGRADE, "Origin": origin})
        assert response.status == 403, origin
        assert (await response.json())["error"]["code"] == "forbidden_origin"
    async with client.ws_connect("/ws", headers={"Origin": ours}) as ws:
        await ws.send_json({"type": "hello"})
        assert (await ws.receive_json(timeout=5))["type"] == "session"


async def test_the_console_socket_refuses_a_foreign_origin(
    client: Client, session_factory: Any
) -> None:
    await create_staff(session_factory)
    await sign_in(client, StaffRole.agent)
    ours, foreign = _origins(client)
    for origin in foreign:
        response = await client.get("/console/ws", headers={**UPGRADE, "Origin": origin})
        assert response.status == 403, origin
        assert (await response.json())["error"]["code"] == "forbidden_origin"
    async with client.ws_connect("/console/ws", headers={"Origin": ours}) as ws:
        await ws.send_json({"type": "watch", "conversation_id": None})
        await ws.close()


# ---- staff sessions: idle timeout, one's own sessions -----------------------------------------


async def _age_sessions(sessions: Any, minutes: float) -> None:
    async with sessions() as db, db.begin():
        await db.execute(
            update(StaffSession).values(last_used_at=utcnow() - timedelta(minutes=minutes))
        )


async def test_a_staff_session_unused_for_the_idle_timeout_ends(
    client: Client, session_factory: Any
) -> None:
    await create_staff(session_factory)
    await sign_in(client, StaffRole.agent)
    await _age_sessions(session_factory, 29)
    assert (await client.get("/console/api/me")).status == 200
    async with session_factory() as db:
        last_used = (await db.scalars(select(StaffSession.last_used_at))).one()
    assert last_used is not None and utcnow() - last_used < timedelta(minutes=1)  # refreshed

    await _age_sessions(session_factory, 31)  # default STAFF_IDLE_MINUTES: 30
    response = await client.get("/console/api/me")
    assert response.status == 401
    assert response.cookies["console_session"].value == ""  # the cookie is cleared
    async with session_factory() as db:
        assert (await db.scalars(select(StaffSession))).all() == []
        actions = list(await db.scalars(select(AuditLog.action).order_by(AuditLog.id)))
    assert actions[-1] == "session_idle_timeout"


def test_the_idle_timeout_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().staff_idle_minutes == 30
    monkeypatch.setenv("STAFF_IDLE_MINUTES", "5")
    assert Settings.from_env().staff_idle_minutes == 5
    with pytest.raises(ConfigError, match="STAFF_IDLE_MINUTES"):
        Settings(staff_idle_minutes=0)


async def test_staff_see_and_end_their_own_sessions(client: Client, session_factory: Any) -> None:
    await create_staff(session_factory)
    await sign_in(client, StaffRole.agent)  # "the laptop"
    laptop = client.session.cookie_jar.filter_cookies(client.make_url("/"))["console_session"]
    client.session.cookie_jar.clear()
    await sign_in(client, StaffRole.admin)  # someone else's session
    client.session.cookie_jar.clear()
    response = await client.post(
        "/console/api/login",
        json={"email": "agent@example.com", "password": PASSWORD},
        headers={"X-Requested-With": "console", "User-Agent": "Phone browser/1.0"},
    )
    csrf = {"X-CSRF-Token": (await response.json())["csrf_token"]}

    listed = await (await client.get("/console/api/sessions")).json()
    assert listed["idle_minutes"] == 30
    assert [s["current"] for s in listed["sessions"]] == [True, False]
    assert listed["sessions"][0]["user_agent"] == "Phone browser/1.0"
    assert listed["sessions"][0]["client_address"] == "127.0.0.1"
    assert {len(s["id"]) for s in listed["sessions"]} == {16}
    other = listed["sessions"][1]["id"]

    # Not someone else's: the admin's session is not in the agent's list, nor can it be ended.
    async with session_factory() as db:
        hashes = list(await db.scalars(select(StaffSession.token_hash)))
    assert len(hashes) == 3
    admins = [h[:16] for h in hashes if h[:16] not in {s["id"] for s in listed["sessions"]}]
    refused = await client.delete(f"/console/api/sessions/{admins[0]}", headers=csrf)
    assert refused.status == 404
    assert (await client.delete(f"/console/api/sessions/{other}")).status == 403  # CSRF

    assert (await client.delete(f"/console/api/sessions/{other}", headers=csrf)).status == 204
    laptop_cookies = {"console_session": laptop.value}
    async with (
        aiohttp.ClientSession(cookies=laptop_cookies) as laptop_tab,
        laptop_tab.get(client.make_url("/console/api/me")) as gone,
    ):
        assert gone.status == 401  # the laptop is signed out
    listed = await (await client.get("/console/api/sessions")).json()
    assert [s["current"] for s in listed["sessions"]] == [True]

    mine = listed["sessions"][0]["id"]
    ended = await client.delete(f"/console/api/sessions/{mine}", headers=csrf)
    assert ended.status == 204 and ended.cookies["console_session"].value == ""
    assert (await client.get("/console/api/me")).status == 401
    async with session_factory() as db:
        assert len((await db.scalars(select(StaffSession))).all()) == 1  # the admin's


# ---- optional TOTP two-factor sign-in -------------------------------------------------------


async def _minutes_later(sessions: Any) -> None:
    """As if the codes used so far were minutes old (instead of waiting for new steps)."""
    async with sessions() as db, db.begin():
        await db.execute(update(StaffUser).values(totp_last_step=1))


def _code(secret: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


async def _login(client: Client, role: StaffRole, code: str | None = None) -> Any:
    body: dict[str, Any] = {"email": f"{role.value}@example.com", "password": PASSWORD}
    if code is not None:
        body["code"] = code
    return await client.post(
        "/console/api/login", json=body, headers={"X-Requested-With": "console"}
    )


async def _turn_on_two_factor(client: Client, role: StaffRole) -> str:
    csrf = await sign_in(client, role)
    assert await (await client.get("/console/api/2fa")).json() == {
        "enabled": False,
        "pending": False,
        "required": False,
    }
    setup = await (await client.post("/console/api/2fa/setup", headers=csrf)).json()
    secret: str = setup["secret"]
    assert setup["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={secret}" in setup["otpauth_uri"]
    wrong = await client.post("/console/api/2fa/confirm", json={"code": "000000"}, headers=csrf)
    assert wrong.status == 422
    confirmed = await client.post(
        "/console/api/2fa/confirm", json={"code": _code(secret)}, headers=csrf
    )
    assert confirmed.status == 200, await confirmed.text()
    assert (await confirmed.json())["enabled"] is True
    client.session.cookie_jar.clear()
    return secret


async def test_two_factor_sign_in_needs_a_fresh_code(client: Client, session_factory: Any) -> None:
    await create_staff(session_factory)
    secret = await _turn_on_two_factor(client, StaffRole.agent)

    missing = await _login(client, StaffRole.agent)
    assert missing.status == 401
    assert (await missing.json())["error"]["code"] == "totp_required"
    assert "console_session" not in missing.cookies
    wrong = await _login(
        client, StaffRole.agent, "123456" if _code(secret) != "123456" else "654321"
    )
    assert (wrong.status, (await wrong.json())["error"]["code"]) == (401, "bad_totp")
    # A wrong password with a right code is still a wrong password.
    bad_password = await client.post(
        "/console/api/login",
        json={"email": "agent@example.com", "password": "wrong-password", "code": _code(secret)},
        headers={"X-Requested-With": "console"},
    )
    assert (await bad_password.json())["error"]["code"] == "bad_credentials"

    # The set-up used this step's code: the next step's (allowed drift) signs in.
    code = _code(secret, 1)
    signed_in = await _login(client, StaffRole.agent, code)
    assert signed_in.status == 200
    client.session.cookie_jar.clear()
    replayed = await _login(client, StaffRole.agent, code)  # the same code again: refused
    assert (await replayed.json())["error"]["code"] == "bad_totp"
    # Other accounts are not affected.
    assert (await _login(client, StaffRole.cx_manager)).status == 200


async def test_two_factor_is_turned_off_only_with_a_code(
    client: Client, session_factory: Any
) -> None:
    await create_staff(session_factory)
    secret = await _turn_on_two_factor(client, StaffRole.agent)
    response = await _login(client, StaffRole.agent, _code(secret, 1))
    csrf = {"X-CSRF-Token": (await response.json())["csrf_token"]}
    refused = await client.post("/console/api/2fa/disable", json={"code": "x"}, headers=csrf)
    assert refused.status == 422
    used = await client.post(
        "/console/api/2fa/disable", json={"code": _code(secret, 1)}, headers=csrf
    )
    assert used.status == 422  # the sign-in's code is used up
    await _minutes_later(session_factory)
    off = await client.post("/console/api/2fa/disable", json={"code": _code(secret)}, headers=csrf)
    assert off.status == 200 and (await off.json())["enabled"] is False
    client.session.cookie_jar.clear()
    assert (await _login(client, StaffRole.agent)).status == 200
    async with session_factory() as db:
        actions = list(await db.scalars(select(AuditLog.action)))
    assert "totp_enabled" in actions and "totp_disabled" in actions


async def test_staff_2fa_required_keeps_admins_without_it_out(
    engine: Any, settings: Settings, rasa: tuple[StubRasa, str], session_factory: Any
) -> None:
    await create_staff(session_factory)
    required = replace(settings, rasa_url=rasa[1], staff_2fa="required")
    async with TestClient(TestServer(create_app(required))) as client:
        refused = await _login(client, StaffRole.admin)
        assert refused.status == 403
        body = await refused.json()
        assert body["error"]["code"] == "totp_setup_required"
        assert "STAFF_2FA=optional" in body["error"]["message"]
        assert (await _login(client, StaffRole.agent)).status == 200  # only admins
    # Set up while optional, the admin then signs in with a code, and cannot turn it off.
    async with TestClient(TestServer(create_app(replace(required, staff_2fa="optional")))) as c:
        secret = await _turn_on_two_factor(c, StaffRole.admin)
    async with TestClient(TestServer(create_app(required))) as client:
        response = await _login(client, StaffRole.admin, _code(secret, 1))
        assert response.status == 200
        csrf = {"X-CSRF-Token": (await response.json())["csrf_token"]}
        status = await (await client.get("/console/api/2fa")).json()
        assert status == {"enabled": True, "pending": False, "required": True}
        await _minutes_later(session_factory)
        off = await client.post(
            "/console/api/2fa/disable", json={"code": _code(secret)}, headers=csrf
        )
        assert off.status == 409
    with pytest.raises(ConfigError, match="STAFF_2FA"):
        Settings(staff_2fa="yes")
