"""API tokens: bearer credentials for the JSON API (shop backends, reports, scripts).

The plaintext is shown once at creation; the database keeps only its SHA-256, so a leaked
database holds no usable token. A token acts with the rights of its role.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.enums import StaffRole
from bot.domain.errors import InvalidInput, NotFound
from bot.storage.models import ApiToken, AuditLog, utcnow

TOKEN_PREFIX = "fbk_"
_MAX_TOKEN_CHARS = 128
# last_used_at is refreshed at most this often (each refresh is one UPDATE).
_USE_REFRESH = timedelta(minutes=1)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def create_token(
    session: AsyncSession, name: str, role: StaffRole, *, actor: str = "system"
) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the plaintext (never stored)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("The token name must have 1 to 100 characters.")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name, token_hash=_token_hash(plaintext), role=StaffRole(role))
    session.add(token)
    await session.flush()
    session.add(
        AuditLog(
            actor=actor,
            action="create_api_token",
            target_type="api_token",
            target_id=str(token.id),
            details={"name": name, "role": token.role.value},
        )
    )
    return token, plaintext


async def authenticate(session: AsyncSession, plaintext: str) -> ApiToken | None:
    """The live token behind a bearer value; None when unknown or revoked."""
    if not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > _MAX_TOKEN_CHARS:
        return None
    token = (
        await session.execute(select(ApiToken).where(ApiToken.token_hash == _token_hash(plaintext)))
    ).scalar_one_or_none()
    if token is None or token.revoked_at is not None:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= _USE_REFRESH:
        token.last_used_at = now
    return token


async def revoke(session: AsyncSession, token_id: int, *, actor: str = "system") -> ApiToken:
    token = await session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"There is no API token {token_id}.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.add(
            AuditLog(
                actor=actor,
                action="revoke_api_token",
                target_type="api_token",
                target_id=str(token.id),
                details={},
            )
        )
    return token


async def list_tokens(session: AsyncSession) -> list[ApiToken]:
    return list((await session.execute(select(ApiToken).order_by(ApiToken.id))).scalars())
