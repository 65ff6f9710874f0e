"""Staff accounts, console sign-in and API tokens for HTTP tests of staff surfaces."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import api_tokens, staff
from bot.domain.enums import StaffRole

PASSWORD = "long-enough-pw"
# One account per role: agent@example.com, cx_manager@example.com, admin@example.com.
ROLE_EMAILS = {role: f"{role.value}@example.com" for role in StaffRole}


async def create_staff(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with session_factory() as db, db.begin():
        for role, email in ROLE_EMAILS.items():
            await staff.create_user(db, email, role.value.title(), role, PASSWORD)


async def create_api_token(
    session_factory: async_sessionmaker[AsyncSession], role: StaffRole, name: str = "test"
) -> str:
    async with session_factory() as db, db.begin():
        _token, plaintext = await api_tokens.create_token(db, name, role)
    return plaintext


async def sign_in(client: TestClient[Any, Any], role: StaffRole) -> dict[str, str]:
    """Sign in as the account of `role`; returns the headers an unsafe API call needs."""
    response = await client.post(
        "/console/api/login",
        json={"email": ROLE_EMAILS[role], "password": PASSWORD},
        headers={"X-Requested-With": "console"},
    )
    assert response.status == 200, await response.text()
    me: dict[str, Any] = await response.json()
    return {"X-CSRF-Token": me["csrf_token"]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
