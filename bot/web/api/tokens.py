"""API tokens (admin only): list, create (the plaintext is in the response, once), revoke."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.domain import api_tokens
from bot.domain.enums import StaffRole
from bot.domain.errors import InvalidInput
from bot.storage.models import ApiToken
from bot.web.api.auth import current_principal, require_api_roles
from bot.web.api.openapi import error_responses, json_content
from bot.web.errors import read_json_object
from bot.web.keys import SESSIONS

ROLE_VALUES = [role.value for role in StaffRole]


def token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "role": token.role.value,
        "created_at": token.created_at.isoformat(),
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }


@require_api_roles(StaffRole.admin)
async def list_tokens(request: web.Request) -> web.Response:
    async with request.config_dict[SESSIONS]() as db:
        tokens = await api_tokens.list_tokens(db)
    return web.json_response({"tokens": [token_json(t) for t in tokens]})


@require_api_roles(StaffRole.admin)
async def create_token(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    name, role = body.get("name"), body.get("role")
    if not isinstance(name, str):
        raise InvalidInput("'name' must be a string.")
    if role not in ROLE_VALUES:
        raise InvalidInput(f"'role' must be one of {', '.join(ROLE_VALUES)}.")
    async with request.config_dict[SESSIONS]() as db:
        token, plaintext = await api_tokens.create_token(
            db, name, StaffRole(role), actor=current_principal(request).actor
        )
        await db.commit()
    return web.json_response({**token_json(token), "token": plaintext}, status=201)


@require_api_roles(StaffRole.admin)
async def revoke_token(request: web.Request) -> web.Response:
    try:
        token_id = int(request.match_info["token_id"])
    except ValueError as exc:
        raise web.HTTPNotFound(reason="Not found.") from exc
    async with request.config_dict[SESSIONS]() as db:
        token = await api_tokens.revoke(db, token_id, actor=current_principal(request).actor)
        await db.commit()
    return web.json_response(token_json(token))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/tokens", list_tokens)
    app.router.add_post("/tokens", create_token)
    # At most 9 digits: larger ids exist in no table (INTEGER) and would overflow the driver.
    app.router.add_delete("/tokens/{token_id:\\d{1,9}}", revoke_token)


_TOKEN = {
    "type": "object",
    "required": ["id", "name", "role", "created_at", "last_used_at", "revoked_at"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "role": {"type": "string", "enum": ROLE_VALUES},
        "created_at": {"type": "string", "format": "date-time"},
        "last_used_at": {"type": ["string", "null"], "format": "date-time"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
    },
}


OPENAPI_SCHEMAS: dict[str, Any] = {"ApiToken": _TOKEN}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/tokens": {
        "get": {
            "summary": "List API tokens (admin)",
            "responses": {
                "200": {
                    "description": "tokens",
                    **json_content(
                        {
                            "type": "object",
                            "required": ["tokens"],
                            "properties": {
                                "tokens": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/ApiToken"},
                                }
                            },
                        }
                    ),
                },
                **error_responses(401, 403),
            },
        },
        "post": {
            "summary": "Create an API token (admin); the plaintext is returned once",
            "requestBody": {
                "required": True,
                **json_content(
                    {
                        "type": "object",
                        "required": ["name", "role"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1, "maxLength": 100},
                            "role": {"type": "string", "enum": ROLE_VALUES},
                        },
                    }
                ),
            },
            "responses": {
                "201": {
                    "description": "created",
                    **json_content(
                        {
                            "allOf": [
                                {"$ref": "#/components/schemas/ApiToken"},
                                {
                                    "type": "object",
                                    "required": ["token"],
                                    "properties": {"token": {"type": "string"}},
                                },
                            ]
                        }
                    ),
                },
                **error_responses(400, 401, 403, 422),
            },
        },
    },
    "/api/tokens/{token_id}": {
        "delete": {
            "summary": "Revoke an API token (admin)",
            "parameters": [
                {
                    "name": "token_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0, "maximum": 999_999_999},
                }
            ],
            "responses": {
                "200": {
                    "description": "revoked",
                    **json_content({"$ref": "#/components/schemas/ApiToken"}),
                },
                **error_responses(401, 403, 404),
            },
        }
    },
}
