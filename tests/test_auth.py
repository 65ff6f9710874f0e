"""Console authentication (bot/web/auth.py) in a small /console sub-app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain import staff
from bot.domain.enums import StaffRole
from bot.storage.models import AuditLog, StaffSession, StaffUser, utcnow
from bot.web.app import security_headers
from bot.web.auth import (
    COOKIE_NAME,
    STAFF_SESSION,
    current_staff,
    require_roles,
    setup_auth,
)
from bot.web.errors import error_middleware
from bot.web.keys import ENGINE, SESSIONS, SETTINGS

PASSWORD = "console-password-1"
JSON_LOGIN = {"X-Requested-With": "console"}

Client = TestClient[web.Request, web.Application]


async def page(request: web.Request) -> web.Response:
    return web.Response(text=f"console of {current_staff(request).display_name}")


async def ping(request: web.Request) -> web.Response:
    user = current_staff(request)
    return web.json_response({"email": user.email, "csrf": request[STAFF_SESSION].csrf_token})


@require_roles(StaffRole.agent, StaffRole.admin)
async def act(request: web.Request) -> web.Response:
    return web.json_response({"done_by": current_staff(request).email})


@require_roles(StaffRole.admin)
async def admin_page(_request: web.Request) -> web.Response:
    return web.Response(text="admin only")


def _site(
    settings: Settings, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> web.Application:
    app = web.Application(middlewares=[error_middleware, security_headers])
    app[SETTINGS] = settings
    app[ENGINE] = engine
    app[SESSIONS] = sessions
    console = web.Application()
    setup_auth(console)
    console.router.add_get("/", page)
    console.router.add_get("/admin", admin_page)
    console.router.add_get("/api/ping", ping)
    console.router.add_post("/api/act", act)
    app.add_subapp("/console", console)
    return app


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        staff, "password_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture
async def users(session_factory: async_sessionmaker[AsyncSession]) -> dict[str, StaffUser]:
    async with session_factory() as db:
        made = {
            name: await staff.create_user(db, f"{name}@example.com", name.title(), role, PASSWORD)
            for name, role in [
                ("agent", StaffRole.agent),
                ("cx", StaffRole.cx_manager),
                ("admin", StaffRole.admin),
                ("former", StaffRole.agent),
            ]
        }
        made["former"].is_active = False
        await db.commit()
    return made


@pytest.fixture
async def client(
    settings: Settings,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    users: dict[str, StaffUser],
) -> AsyncIterator[Client]:
    async with TestClient(TestServer(_site(settings, engine, session_factory))) as test_client:
        yield test_client


async def _login(
    client: Client,
    email: str = "agent@example.com",
    password: str = PASSWORD,
    headers: dict[str, str] | None = None,
) -> Any:
    response = await client.post(
        "/console/api/login",
        json={"email": email, "password": password},
        headers={**JSON_LOGIN, **(headers or {})},
    )
    assert response.status == 200, await response.text()
    return response


def _cookie_header(response: Any) -> str:
    [header] = [v for v in response.headers.getall("Set-Cookie") if v.startswith(COOKIE_NAME)]
    return str(header)


async def _error(response: Any, status: int, code: str) -> str:
    assert response.status == status, await response.text()
    body = await response.json()
    assert body["error"]["code"] == code
    return str(body["error"]["message"])


# ---- anonymous ----------------------------------------------------------------------------


async def test_anonymous_pages_redirect_and_apis_answer_401(client: Client) -> None:
    response = await client.get("/console/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/console/login"

    for method, path in [
        ("GET", "/console/api/ping"),
        ("POST", "/console/api/act"),
        ("GET", "/console/ws"),
        ("GET", "/console/api/me"),
        ("POST", "/console/api/logout"),
    ]:
        response = await client.request(method, path, allow_redirects=False)
        assert await _error(response, 401, "unauthorized") == "Please sign in."


async def test_login_page_is_public(client: Client) -> None:
    response = await client.get("/console/login")
    assert response.status == 200
    assert response.content_type == "text/html"


async def test_unknown_cookie_is_refused_and_cleared(client: Client) -> None:
    response = await client.get(
        "/console/api/ping", headers={"Cookie": f"{COOKIE_NAME}=forged-token"}
    )
    await _error(response, 401, "unauthorized")
    assert "Max-Age=0" in _cookie_header(response)


# ---- login --------------------------------------------------------------------------------


async def test_login_sets_a_strict_http_only_cookie(
    client: Client, users: dict[str, StaffUser]
) -> None:
    response = await _login(client)
    body = await response.json()
    agent = users["agent"]
    assert body == {
        "id": agent.id,
        "email": "agent@example.com",
        "display_name": "Agent",
        "role": "agent",
        "csrf_token": body["csrf_token"],
    }
    assert len(body["csrf_token"]) >= 43
    assert response.headers["Cache-Control"] == "no-store"
    morsel = response.cookies[COOKIE_NAME]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/"
    assert morsel["max-age"] == str(12 * 3600)
    assert not morsel["secure"]  # plain http in this test
    assert body["csrf_token"] not in morsel.value

    me = await client.get("/console/api/me")
    assert me.status == 200
    assert await me.json() == body
    page_response = await client.get("/console/")
    assert await page_response.text() == "console of Agent"


async def test_cookie_is_secure_behind_an_https_proxy(client: Client) -> None:
    response = await _login(client, headers={"X-Forwarded-Proto": "https"})
    header = _cookie_header(response)
    assert "Secure" in header and "HttpOnly" in header and "SameSite=Strict" in header


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("agent@example.com", "wrong-password-1"),
        ("nobody@example.com", PASSWORD),
        ("former@example.com", PASSWORD),  # deactivated
    ],
)
async def test_bad_credentials(client: Client, email: str, password: str) -> None:
    response = await client.post(
        "/console/api/login", json={"email": email, "password": password}, headers=JSON_LOGIN
    )
    assert await _error(response, 401, "bad_credentials") == "Wrong email or password."
    assert COOKIE_NAME not in response.cookies


async def test_login_needs_json_and_the_console_header(client: Client) -> None:
    form = await client.post(
        "/console/api/login",
        data={"email": "agent@example.com", "password": PASSWORD},
        headers=JSON_LOGIN,
    )
    await _error(form, 403, "csrf_failed")
    no_header = await client.post(
        "/console/api/login", json={"email": "agent@example.com", "password": PASSWORD}
    )
    await _error(no_header, 403, "csrf_failed")
    text_plain = await client.post(
        "/console/api/login",
        data='{"email": "agent@example.com", "password": "console-password-1"}',
        headers={**JSON_LOGIN, "Content-Type": "text/plain"},
    )
    await _error(text_plain, 403, "csrf_failed")
    assert COOKIE_NAME not in form.cookies


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "bad_json"),
        ("[]", "bad_request"),
        ('{"email": "agent@example.com"}', "bad_request"),
    ],
)
async def test_malformed_login_is_a_bad_request(client: Client, body: str, code: str) -> None:
    response = await client.post(
        "/console/api/login",
        data=body,
        headers={**JSON_LOGIN, "Content-Type": "application/json"},
    )
    await _error(response, 400, code)


async def test_login_rotates_the_session(client: Client) -> None:
    first = (await _login(client)).cookies[COOKIE_NAME].value
    second = (await _login(client)).cookies[COOKIE_NAME].value
    assert first != second
    client.session.cookie_jar.clear()
    stale = await client.get("/console/api/me", headers={"Cookie": f"{COOKIE_NAME}={first}"})
    await _error(stale, 401, "unauthorized")
    fresh = await client.get("/console/api/me", headers={"Cookie": f"{COOKIE_NAME}={second}"})
    assert fresh.status == 200


async def test_repeated_failures_are_rate_limited(client: Client) -> None:
    for _ in range(10):
        response = await client.post(
            "/console/api/login",
            json={"email": "agent@example.com", "password": "wrong-password-1"},
            headers=JSON_LOGIN,
        )
        await _error(response, 401, "bad_credentials")
    blocked = await client.post(
        "/console/api/login",
        json={"email": "agent@example.com", "password": PASSWORD},
        headers=JSON_LOGIN,
    )
    await _error(blocked, 429, "rate_limited")
    await _login(client, email="cx@example.com")  # other accounts are not affected


# ---- CSRF and roles -----------------------------------------------------------------------


async def test_unsafe_requests_need_the_csrf_token(client: Client) -> None:
    csrf = (await (await _login(client)).json())["csrf_token"]
    await _error(await client.post("/console/api/act"), 403, "csrf_failed")
    wrong = await client.post("/console/api/act", headers={"X-CSRF-Token": csrf[:-1] + "x"})
    await _error(wrong, 403, "csrf_failed")
    non_ascii = await client.post("/console/api/act", headers={"X-CSRF-Token": "é"})
    await _error(non_ascii, 403, "csrf_failed")
    right = await client.post("/console/api/act", headers={"X-CSRF-Token": csrf})
    assert right.status == 200
    assert await right.json() == {"done_by": "agent@example.com"}


async def test_roles_are_checked(client: Client) -> None:
    csrf = (await (await _login(client, email="cx@example.com")).json())["csrf_token"]
    response = await client.post("/console/api/act", headers={"X-CSRF-Token": csrf})
    message = await _error(response, 403, "forbidden")
    assert message == "Your role (cx_manager) cannot do this."
    page_response = await client.get("/console/admin")
    assert page_response.status == 403
    assert page_response.content_type == "text/html"
    assert "cx_manager" in await page_response.text()


async def test_admin_passes_role_checks(client: Client) -> None:
    csrf = (await (await _login(client, email="admin@example.com")).json())["csrf_token"]
    response = await client.post("/console/api/act", headers={"X-CSRF-Token": csrf})
    assert response.status == 200
    assert await (await client.get("/console/admin")).text() == "admin only"


async def test_role_change_applies_on_the_next_request(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    csrf = (await (await _login(client)).json())["csrf_token"]
    async with session_factory() as db:
        await db.execute(
            update(StaffUser)
            .where(StaffUser.email == "agent@example.com")
            .values(role=StaffRole.cx_manager)
        )
        await db.commit()
    response = await client.post("/console/api/act", headers={"X-CSRF-Token": csrf})
    await _error(response, 403, "forbidden")


# ---- logout, expiry, presence, audit ------------------------------------------------------


async def test_logout_ends_the_session(
    client: Client, session_factory: async_sessionmaker[AsyncSession], users: dict[str, StaffUser]
) -> None:
    response = await _login(client)
    token = response.cookies[COOKIE_NAME].value
    csrf = (await response.json())["csrf_token"]

    await _error(await client.post("/console/api/logout"), 403, "csrf_failed")
    out = await client.post("/console/api/logout", headers={"X-CSRF-Token": csrf})
    assert out.status == 204
    assert "Max-Age=0" in _cookie_header(out)

    await _error(await client.get("/console/api/me"), 401, "unauthorized")
    replayed = await client.get("/console/api/me", headers={"Cookie": f"{COOKIE_NAME}={token}"})
    await _error(replayed, 401, "unauthorized")

    async with session_factory() as db:
        audit = (await db.execute(select(AuditLog).order_by(AuditLog.id))).scalars().all()
        actions = [(a.actor, a.action) for a in audit if a.action in ("login", "logout")]
        actor = f"staff:{users['agent'].id}"
        assert actions == [(actor, "login"), (actor, "logout")]


async def test_expired_session_redirects_to_login(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await _login(client)
    async with session_factory() as db:
        await db.execute(update(StaffSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        await db.commit()
    response = await client.get("/console/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/console/login"
    async with session_factory() as db:
        assert (await db.execute(select(StaffSession))).first() is None


async def test_signed_in_agents_are_online_until_they_log_out(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    csrf = (await (await _login(client)).json())["csrf_token"]
    async with session_factory() as db:
        assert [u.email for u in await staff.online_staff(db)] == ["agent@example.com"]
    await client.post("/console/api/logout", headers={"X-CSRF-Token": csrf})
    async with session_factory() as db:
        assert await staff.online_staff(db) == []
