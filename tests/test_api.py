"""The /api sub-app: bearer tokens and staff sessions, CSRF, roles, the OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from sqlalchemy import select

from bot.domain import staff
from bot.domain.enums import StaffRole
from bot.storage.models import ApiToken, AuditLog
from tests.staff_helpers import bearer, create_api_token, create_staff, sign_in

Client = TestClient[Any, Any]


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        staff, "password_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture
async def staff_client(client: Client, session_factory: Any) -> Client:
    await create_staff(session_factory)
    return client


async def _error(response: Any, status: int, code: str) -> None:
    assert response.status == status, await response.text()
    assert (await response.json())["error"]["code"] == code


async def test_openapi_document_is_public_and_lists_the_token_api(client: Client) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]["/api/tokens"]) == {"get", "post"}
    assert set(document["paths"]["/api/tokens/{token_id}"]) == {"delete"}
    assert "Error" in document["components"]["schemas"]


async def test_without_credentials_every_api_call_is_401(client: Client) -> None:
    await _error(await client.get("/api/tokens"), 401, "unauthorized")
    await _error(await client.post("/api/tokens", json={}), 401, "unauthorized")


async def test_unknown_or_malformed_bearer_is_401(client: Client) -> None:
    await _error(await client.get("/api/tokens", headers=bearer("fbk_nope")), 401, "unauthorized")
    await _error(
        await client.get("/api/tokens", headers={"Authorization": "Basic abc"}),
        401,
        "unauthorized",
    )


async def test_cookie_calls_need_csrf_and_admin_creates_a_working_token(
    staff_client: Client, session_factory: Any
) -> None:
    csrf = await sign_in(staff_client, StaffRole.admin)
    body = {"name": "shop backend", "role": "cx_manager"}
    await _error(await staff_client.post("/api/tokens", json=body), 403, "csrf_failed")

    response = await staff_client.post("/api/tokens", json=body, headers=csrf)
    assert response.status == 201
    created = await response.json()
    assert created["name"] == "shop backend" and created["role"] == "cx_manager"
    assert created["token"].startswith("fbk_") and created["revoked_at"] is None

    async with session_factory() as db:
        row = (await db.execute(select(ApiToken))).scalar_one()
        assert row.token_hash != created["token"]  # only the hash is stored
        audit = (await db.execute(select(AuditLog))).scalars().all()
    assert [(a.action, a.target_id) for a in audit if a.target_type == "api_token"] == [
        ("create_api_token", str(created["id"]))
    ]

    # A cx_manager token authenticates without cookies or CSRF but cannot manage tokens.
    staff_client.session.cookie_jar.clear()
    await _error(
        await staff_client.get("/api/tokens", headers=bearer(created["token"])), 403, "forbidden"
    )


async def test_agents_cannot_manage_tokens(staff_client: Client) -> None:
    await sign_in(staff_client, StaffRole.agent)
    await _error(await staff_client.get("/api/tokens"), 403, "forbidden")


async def test_admin_token_lists_and_revokes_then_is_refused(
    client: Client, session_factory: Any
) -> None:
    admin_token = await create_api_token(session_factory, StaffRole.admin, "ops")
    other = await create_api_token(session_factory, StaffRole.agent, "old script")

    response = await client.get("/api/tokens", headers=bearer(admin_token))
    assert response.status == 200
    listed = (await response.json())["tokens"]
    assert [(t["name"], t["role"]) for t in listed] == [("ops", "admin"), ("old script", "agent")]
    assert listed[0]["last_used_at"] is not None and listed[1]["last_used_at"] is None

    other_id = listed[1]["id"]
    response = await client.delete(f"/api/tokens/{other_id}", headers=bearer(admin_token))
    assert response.status == 200
    assert (await response.json())["revoked_at"] is not None
    await _error(await client.get("/api/tokens", headers=bearer(other)), 401, "unauthorized")
    await _error(
        await client.delete("/api/tokens/999", headers=bearer(admin_token)), 404, "not_found"
    )


async def test_create_token_validates_its_input(staff_client: Client) -> None:
    csrf = await sign_in(staff_client, StaffRole.admin)
    for body, code in [
        ({"name": "x", "role": "boss"}, "invalid_input"),
        ({"name": "", "role": "agent"}, "invalid_input"),
        ({"role": "agent"}, "invalid_input"),
    ]:
        await _error(await staff_client.post("/api/tokens", json=body, headers=csrf), 422, code)
    await _error(
        await staff_client.post("/api/tokens", data="[1]", headers=csrf), 400, "bad_request"
    )
