"""Who is calling the JSON API: an API token (`Authorization: Bearer fbk_...`) or a staff
session cookie (with the CSRF header on unsafe methods, as in the console).

Handlers state the roles they accept with `@require_api_roles(...)`; the caller is
`current_principal(request)`. Paths in `PUBLIC_PATHS` authenticate themselves (the events
webhook checks its HMAC signature) or are public documents (the OpenAPI document).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.domain import api_tokens
from bot.domain.enums import StaffRole
from bot.web.auth import csrf_failed, csrf_ok, load_staff_session
from bot.web.errors import json_error
from bot.web.keys import SESSIONS

API_PREFIX = "/api"
PUBLIC_PATHS = frozenset({f"{API_PREFIX}/openapi.json", f"{API_PREFIX}/events"})
ALL_ROLES = (StaffRole.agent, StaffRole.cx_manager, StaffRole.admin)


@dataclass(frozen=True)
class Principal:
    role: StaffRole
    name: str
    staff_user_id: int | None = None
    api_token_id: int | None = None

    @property
    def actor(self) -> str:
        """Audit-log actor string."""
        if self.staff_user_id is not None:
            return f"staff:{self.staff_user_id}"
        return f"token:{self.api_token_id}"


PRINCIPAL = web.RequestKey("principal", Principal)


def _unauthorized() -> web.Response:
    return json_error(
        401, "unauthorized", "Sign in to the console or send 'Authorization: Bearer <API token>'."
    )


async def _from_bearer(request: web.Request, value: str) -> Principal | None:
    async with request.config_dict[SESSIONS]() as db:
        token = await api_tokens.authenticate(db, value)
        await db.commit()
    if token is None:
        return None
    return Principal(role=token.role, name=token.name, api_token_id=token.id)


@web.middleware
async def api_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    authorization = request.headers.get("Authorization", "")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return _unauthorized()
        principal = await _from_bearer(request, value.strip())
        if principal is None:
            return json_error(401, "unauthorized", "The API token is unknown or revoked.")
    else:
        found = await load_staff_session(request)
        if found is None:
            return _unauthorized()
        user, staff_session = found
        # Cookies ride along with cross-site requests; bearer tokens do not, so only
        # cookie-authenticated calls need the CSRF header.
        if not csrf_ok(request, staff_session):
            return csrf_failed()
        principal = Principal(role=user.role, name=user.display_name, staff_user_id=user.id)
    request[PRINCIPAL] = principal
    return await handler(request)


def current_principal(request: web.Request) -> Principal:
    if PRINCIPAL not in request:
        raise web.HTTPUnauthorized(
            text='{"error": {"code": "unauthorized", "message": "Please sign in."}}',
            content_type="application/json",
        )
    return request[PRINCIPAL]


def require_api_roles(*roles: StaffRole) -> Callable[[Handler], Handler]:
    """Only these roles may call the handler (403 JSON otherwise)."""
    allowed = frozenset(roles)

    def decorator(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            principal = current_principal(request)
            if principal.role not in allowed:
                return json_error(
                    403, "forbidden", f"Your role ({principal.role.value}) cannot do this."
                )
            return await handler(request)

        return wrapper

    return decorator
