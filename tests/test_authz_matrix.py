"""Authorisation matrix: every route of create_app() x every kind of caller.

`ACCESS` declares, for each (method, route) of the whole application (sub-apps included),
who may call it and what the sample request then answers. A route without an entry, or an
entry without a route, fails `test_every_route_declares_its_access`: whoever adds a route
must say who may use it. docs/security.md has the same table for people.

Callers: anonymous; a console session of each staff role (cookie + CSRF header); an API
token of each role (bearer). Callers a surface does not accept at all (a bearer token on
the console) are treated like anonymous ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher

from bot.config import Settings
from bot.domain import staff
from bot.domain.enums import StaffRole
from bot.web.app import create_app
from tests.staff_helpers import PASSWORD, ROLE_EMAILS, create_api_token, create_staff

Client = TestClient[Any, Any]

ANONYMOUS = "anonymous"
COOKIE = {role: f"session:{role.value}" for role in StaffRole}
TOKEN = {role: f"token:{role.value}" for role in StaffRole}
CALLERS = (ANONYMOUS, *COOKIE.values(), *TOKEN.values())
AGENT, CX, ADMIN = StaffRole.agent, StaffRole.cx_manager, StaffRole.admin
TRAINER = StaffRole.bot_trainer
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Values for path parameters: nothing with these ids exists, so allowed calls reach the
# handler and get its "not found" or validation answer, never a change of state.
PATH_VALUES = {
    "conversation_id": "conv-none",
    "escalation_id": "999999",
    "token_id": "999999",
    "customer_ref": "NOBODY",
    "reviewer_ref": "NOBODY",
    "sku": "KIT-0142",
    "slug": "no-such-article",
    "insight_id": "999999",
    "session_key": "0" * 16,
    "canned_id": "999999",
    "message_id": "999999",
    "photo_id": "999999",
}
# Static directories are requested through one of their files.
STATIC_SAMPLES = {
    "/static": "/static/chat.css",
    "/console/static": "/console/static/console.js",
    "/dashboard/static": "/dashboard/static/dashboard.js",
}


@dataclass(frozen=True)
class Access:
    """Who gets in, and what the sample request answers then."""

    surface: str  # "public", "console" (session cookie only) or "api" (cookie or token)
    roles: frozenset[StaffRole] = frozenset()
    ok: frozenset[int] = frozenset({200})
    # Answer to callers the surface does not know: 401 JSON, or 302 to the login page.
    unknown: int = 401
    headers: dict[str, str] = field(default_factory=dict)
    # What a bot trainer gets when not allowed: 404 where a conversation is named (none is
    # theirs: bot/domain/staff_access.py), else 403.
    trainer_denied: int = 403

    def expected(self, caller: str) -> frozenset[int]:
        if self.surface == "public":
            return self.ok
        role = caller.split(":", 1)[1] if ":" in caller else None
        recognised = caller.startswith("session:") or (
            self.surface == "api" and caller.startswith("token:")
        )
        if not recognised:
            return frozenset({self.unknown})
        if StaffRole(role) in self.roles:
            return self.ok
        return frozenset({self.trainer_denied if role == TRAINER.value else 403})


def public(*ok: int, headers: dict[str, str] | None = None) -> Access:
    return Access("public", ok=frozenset(ok or (200,)), headers=headers or {})


def console(*roles: StaffRole, ok: int = 200, page: bool = False) -> Access:
    return Access("console", frozenset(roles), frozenset({ok}), unknown=302 if page else 401)


def api(*roles: StaffRole, ok: int = 200) -> Access:
    return Access("api", frozenset(roles), frozenset({ok}))


STAFF = (AGENT, CX, ADMIN)
# Every signed-in person, bot trainers (issue #24: the review inbox only) included.
EVERYONE = (*STAFF, TRAINER)
REVIEWERS = (ADMIN, TRAINER)  # the bot's review inbox (issue #24)
AGENTS = (AGENT, ADMIN)  # who works the support queue
DASHBOARD = (CX, ADMIN)

ACCESS: dict[tuple[str, str], Access] = {
    # --- customers and visitors (no staff credentials involved) --------------------------
    ("GET", "/"): public(),
    ("GET", "/ws"): public(400),  # the chat WebSocket: a plain GET is not an upgrade
    ("GET", "/widget.js"): public(),
    ("GET", "/widget.css"): public(),
    ("GET", "/favicon.ico"): public(),
    ("GET", "/static"): public(),
    ("GET", "/demo/shop"): public(302),
    ("GET", "/demo/shop/"): public(),
    ("GET", "/demo/shop/product/{sku}"): public(),
    ("GET", "/demo/shop/orders"): public(),
    ("GET", "/demo/shop/login"): public(),
    ("GET", "/demo/shop/logout"): public(302),
    ("GET", "/demo/shop/shop.css"): public(),
    # Photos (issue #19): uploaded with a chat's resume token (none here: 401), CORS
    # preflight for the shops' origins.
    ("POST", "/chat/photos"): public(401),
    ("OPTIONS", "/chat/photos"): public(204),
    # --- operations (issue #8; public by design, see docs/security.md) -----------------
    ("GET", "/healthz"): public(200, 503),
    ("GET", "/readyz"): public(200, 503),
    # /metrics: METRICS_TOKEN (bearer) or the internal ops port only (issue #22).
    ("GET", "/metrics"): public(401),
    # --- staff console (session cookie; CSRF header on unsafe methods) -----------------
    ("GET", "/console/login"): public(),
    ("POST", "/console/api/login"): public(400, headers={"X-Requested-With": "console"}),
    ("POST", "/console/api/logout"): console(*EVERYONE, ok=204),
    ("GET", "/console/api/me"): console(*EVERYONE),
    # One's own sessions: see them, end one (issue #22).
    ("GET", "/console/api/sessions"): console(*EVERYONE),
    ("DELETE", "/console/api/sessions/{session_key}"): console(*EVERYONE, ok=404),
    # One's own two-factor sign-in (issue #22): nothing to confirm or turn off yet (409).
    ("GET", "/console/api/2fa"): console(*EVERYONE),
    ("POST", "/console/api/2fa/setup"): console(*EVERYONE),
    ("POST", "/console/api/2fa/confirm"): Access(
        "console", frozenset(EVERYONE), frozenset({409, 422})
    ),
    ("POST", "/console/api/2fa/disable"): console(*EVERYONE, ok=409),
    ("GET", "/console/static"): public(),
    # CX managers see the queue, conversations and history read-only (issue #20).
    ("GET", "/console/"): console(*STAFF, page=True),
    ("GET", "/console/conversations/{conversation_id}"): console(*STAFF, page=True),
    ("GET", "/console/history"): console(*STAFF, page=True),
    ("GET", "/console/replies"): console(*AGENTS, page=True),
    ("GET", "/console/account"): console(*EVERYONE, page=True),
    ("GET", "/console/api/queue"): console(*STAFF),
    ("GET", "/console/api/history"): console(*STAFF),
    ("GET", "/console/api/staff"): console(*AGENTS),
    ("GET", "/console/api/conversations/{conversation_id}"): console(*STAFF, ok=404),
    ("POST", "/console/api/conversations/{conversation_id}/read"): console(*STAFF, ok=404),
    ("GET", "/console/api/canned"): console(*AGENTS),
    ("POST", "/console/api/canned"): console(ADMIN, ok=422),
    ("PUT", "/console/api/canned/{canned_id}"): console(ADMIN, ok=422),
    ("DELETE", "/console/api/canned/{canned_id}"): console(ADMIN, ok=404),
    # An agent's conversation outside their work (and an unknown one) is 404 before the
    # body is read (issue #22, tests/test_staff_access.py); an admin's gets 422.
    ("POST", "/console/api/conversations/{conversation_id}/messages"): Access(
        "console", frozenset(AGENTS), frozenset({404, 422})
    ),
    ("POST", "/console/api/conversations/{conversation_id}/notes"): console(*AGENTS, ok=404),
    ("POST", "/console/api/escalations/{escalation_id}/claim"): console(*AGENTS, ok=404),
    ("POST", "/console/api/escalations/{escalation_id}/transfer"): console(*AGENTS, ok=404),
    ("POST", "/console/api/escalations/{escalation_id}/resolve"): console(*AGENTS, ok=404),
    ("POST", "/console/api/escalations/{escalation_id}/release"): console(*AGENTS, ok=404),
    ("POST", "/console/api/escalations/{escalation_id}/takeover"): console(*AGENTS, ok=404),
    ("POST", "/console/api/escalations/{escalation_id}/reopen"): console(*AGENTS, ok=404),
    ("GET", "/console/ws"): console(*STAFF, ok=400),  # a plain GET is not an upgrade
    # Customers' photos (issue #19): staff who may read the chat; 404 for an unknown one.
    ("GET", "/console/api/photos/{photo_id}"): console(*STAFF, ok=404),
    # The bot's review inbox (issue #24): admins and bot trainers.
    ("GET", "/console/review"): console(*REVIEWERS, page=True),
    ("GET", "/console/api/review"): console(*REVIEWERS),
    ("POST", "/console/api/review/{message_id}"): console(*REVIEWERS, ok=404),
    ("GET", "/console/api/review/{message_id}/regression.yml"): console(*REVIEWERS, ok=404),
    # The knowledge base (issue #19): admins.
    ("GET", "/console/knowledge"): console(ADMIN, page=True),
    ("GET", "/console/api/knowledge"): console(ADMIN),
    ("POST", "/console/api/knowledge/articles"): console(ADMIN, ok=422),
    ("POST", "/console/api/knowledge/products"): console(ADMIN, ok=422),
    # --- JSON API (cookie + CSRF, or bearer token) --------------------------------------
    ("GET", "/api/openapi.json"): public(),
    ("GET", "/api/tokens"): api(ADMIN),
    ("POST", "/api/tokens"): api(ADMIN, ok=422),
    ("DELETE", "/api/tokens/{token_id}"): api(ADMIN, ok=404),
    ("GET", "/api/knowledge/products"): api(ADMIN),
    ("POST", "/api/knowledge/products/import"): api(ADMIN, ok=422),
    ("PUT", "/api/knowledge/products/{sku}"): api(ADMIN, ok=422),
    ("DELETE", "/api/knowledge/products/{sku}"): api(ADMIN, ok=404),
    ("GET", "/api/knowledge/articles"): api(ADMIN),
    ("PUT", "/api/knowledge/articles/{slug}"): api(ADMIN, ok=422),
    ("DELETE", "/api/knowledge/articles/{slug}"): api(ADMIN, ok=404),
    ("GET", "/api/knowledge/unanswered"): api(ADMIN),
    ("GET", "/api/customers/{customer_ref}/export"): api(ADMIN, ok=404),
    ("POST", "/api/customers/{customer_ref}/erase"): api(ADMIN, ok=404),
    ("GET", "/api/reviewers/{reviewer_ref}/export"): api(ADMIN, ok=404),
    ("POST", "/api/reviewers/{reviewer_ref}/erase"): api(ADMIN, ok=404),
    # Shop events webhook (issue #5): authenticated by its HMAC signature alone, whoever
    # else calls; without one every caller gets 401.
    ("POST", "/api/events"): public(401),
    # CX dashboard API (issue #6).
    ("GET", "/api/metrics"): api(*DASHBOARD),
    ("GET", "/api/metrics/share-of-voice"): api(*DASHBOARD),
    # The labels of keys: the dashboard's and the console's (every staff role).
    ("GET", "/api/labels"): api(*EVERYONE),
    ("GET", "/api/support"): api(*DASHBOARD),
    ("GET", "/api/journey"): api(*DASHBOARD),
    ("GET", "/api/journey/fix-first"): api(*DASHBOARD),
    ("GET", "/api/feedback"): api(*DASHBOARD),
    ("GET", "/api/export"): api(*DASHBOARD),
    ("GET", "/api/transcripts/{conversation_id}"): api(*DASHBOARD, ok=404),
    # Feedback from other channels (issue #5): imported by the shop's backend or CX.
    ("POST", "/api/feedback"): api(*DASHBOARD, ok=422),
    # Loyalty and the insights board (issue #10): everyone reads the board, CX changes it.
    ("GET", "/api/loyalty"): api(*DASHBOARD),
    ("GET", "/api/loyalty/cohorts"): api(*DASHBOARD),
    ("GET", "/api/insights"): api(*STAFF),
    ("GET", "/api/insights/export"): api(*DASHBOARD),
    ("GET", "/api/insights/{insight_id}"): api(*STAFF, ok=404),
    # How well the bot understands (issue #24).
    ("GET", "/api/bot-quality"): api(CX, ADMIN, TRAINER),
    ("GET", "/api/bot-quality/retrainings"): api(CX, ADMIN, TRAINER),
    ("POST", "/api/insights"): api(*DASHBOARD, ok=422),
    ("PATCH", "/api/insights/{insight_id}"): api(*DASHBOARD, ok=404),
    ("DELETE", "/api/insights/{insight_id}"): api(*DASHBOARD, ok=404),
    ("POST", "/api/insights/{insight_id}/status"): api(*DASHBOARD, ok=422),
    # --- CX dashboard pages (issue #6, #10; session cookie; agents get a 403 page) ----
    ("GET", "/dashboard"): public(302),
    ("GET", "/dashboard/"): console(*DASHBOARD, page=True),
    ("GET", "/dashboard/breakdowns"): console(*DASHBOARD, page=True),
    ("GET", "/dashboard/journey"): console(*DASHBOARD, page=True),
    ("GET", "/dashboard/explorer"): console(*DASHBOARD, page=True),
    ("GET", "/dashboard/transcript"): console(*DASHBOARD, page=True),
    ("GET", "/dashboard/support"): console(*DASHBOARD, page=True),
    ("GET", "/dashboard/loyalty"): console(*DASHBOARD, page=True),
    ("GET", "/dashboard/insights"): console(*DASHBOARD, page=True),
    ("GET", "/dashboard/bot"): console(*DASHBOARD, page=True),
    ("GET", "/dashboard/static"): public(),
}

# A console call naming a conversation is 404 for a bot trainer, as for an unknown one.
for _key, _access in ACCESS.items():
    if _key[1].startswith("/console/api/conversations/{conversation_id}"):
        ACCESS[_key] = replace(_access, trainer_denied=404)


def _routes(router: web.UrlDispatcher) -> Iterator[tuple[str, str]]:
    """(method, path template) of every route, walking into sub-apps; HEAD mirrors GET."""
    for resource in router.resources():
        info = resource.get_info()
        if "app" in info:
            yield from _routes(info["app"].router)
            continue
        for route in resource:
            if route.method != "HEAD":
                yield route.method, resource.canonical


def app_routes() -> set[tuple[str, str]]:
    return set(_routes(create_app(Settings()).router))


def test_every_route_declares_its_access() -> None:
    routes = app_routes()
    undeclared = sorted(routes - set(ACCESS))
    stale = sorted(set(ACCESS) - routes)
    assert not undeclared, (
        f"routes without an entry in ACCESS (declare who may call them): {undeclared}"
    )
    assert not stale, f"entries in ACCESS for routes that no longer exist: {stale}"


def _url(path: str) -> str:
    if path in STATIC_SAMPLES:
        return STATIC_SAMPLES[path]
    for name, value in PATH_VALUES.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no sample value for a parameter of {path}"
    return path


# ---- the matrix over HTTP ------------------------------------------------------------------


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    # Authorisation does not depend on the database engine: SQLite only.
    return f"sqlite+aiosqlite:///{tmp_path / 'authz.db'}"


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        staff, "password_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@dataclass
class Credentials:
    client: Client
    tokens: dict[StaffRole, str]
    sessions: dict[StaffRole, tuple[str, str]] = field(default_factory=dict)

    async def session(self, role: StaffRole) -> tuple[str, str]:
        """(cookie value, CSRF token) of a live console session of `role`."""
        if role not in self.sessions:
            response = await self.client.post(
                "/console/api/login",
                json={"email": ROLE_EMAILS[role], "password": PASSWORD},
                headers={"X-Requested-With": "console"},
            )
            assert response.status == 200
            cookie = response.cookies["console_session"].value
            self.client.session.cookie_jar.clear()  # each request sends its own cookie
            self.sessions[role] = (cookie, (await response.json())["csrf_token"])
        return self.sessions[role]

    async def headers(self, caller: str, method: str, csrf: bool = True) -> dict[str, str]:
        if caller == ANONYMOUS:
            return {}
        kind, role_value = caller.split(":", 1)
        role = StaffRole(role_value)
        if kind == "token":
            return {"Authorization": f"Bearer {self.tokens[role]}"}
        cookie, csrf_token = await self.session(role)
        headers = {"Cookie": f"console_session={cookie}"}
        if csrf and method in UNSAFE:
            headers["X-CSRF-Token"] = csrf_token
        return headers


@pytest.fixture
async def credentials(client: Client, session_factory: Any) -> Credentials:
    await create_staff(session_factory)
    tokens = {role: await create_api_token(session_factory, role) for role in StaffRole}
    return Credentials(client, tokens)


async def _call(
    credentials: Credentials, method: str, path: str, caller: str, *, csrf: bool = True
) -> tuple[int, str]:
    access = ACCESS[(method, path)]
    headers = {**access.headers, **(await credentials.headers(caller, method, csrf))}
    response = await credentials.client.request(
        method,
        _url(path),
        headers=headers,
        json={} if method in UNSAFE else None,
        allow_redirects=False,
    )
    body = await response.text()
    if path == "/console/api/logout" and caller.startswith("session:"):
        credentials.sessions.pop(StaffRole(caller.split(":", 1)[1]), None)  # it ended
    if response.status == 302:
        body = response.headers.get("Location", "")
    return response.status, body


async def test_every_route_answers_every_caller_as_declared(credentials: Credentials) -> None:
    wrong = []
    for (method, path), access in sorted(ACCESS.items()):
        for caller in CALLERS:
            status, body = await _call(credentials, method, path, caller)
            if status not in access.expected(caller):
                wrong.append(
                    f"{method} {path} as {caller}: {status}, expected "
                    f"{sorted(access.expected(caller))} ({body[:120]!r})"
                )
            elif status == 302 and access.surface == "console":
                assert body.startswith("/console/login"), f"{method} {path} redirects to {body}"
    assert not wrong, "\n".join(wrong)


async def test_state_changing_calls_with_a_session_cookie_need_the_csrf_header(
    credentials: Credentials,
) -> None:
    """Every unsafe staff route, called by a role that may call it, but without CSRF."""
    checked = []
    for (method, path), access in sorted(ACCESS.items()):
        if method not in UNSAFE or access.surface == "public":
            continue
        caller = COOKIE[sorted(access.roles, key=lambda r: r.value)[0]]
        status, body = await _call(credentials, method, path, caller, csrf=False)
        assert status == 403 and '"csrf_failed"' in body, f"{method} {path}: {status} {body}"
        checked.append(path)
    assert len(checked) >= 8  # the console's and the API's unsafe routes
