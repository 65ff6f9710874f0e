"""Customers' data rights (admin only): export all of a customer's data, erase it.

`{customer_ref}` is the shop's customer id (or our numeric id when no shop id matches).
Erasure is committed first, then the Rasa trackers of the customer's conversations are
wiped; when Rasa is unreachable the answer says which were not, and repeating the call
(idempotent) retries them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.domain import photos, privacy, reviewer_privacy
from bot.domain.enums import StaffRole
from bot.web.api.auth import current_principal, require_api_roles
from bot.web.api.openapi import error_responses, json_content
from bot.web.keys import HUB, RASA, SESSIONS, SETTINGS
from bot.web.rasa_client import RasaUnavailable

MAX_REF_CHARS = 64


def _ref(request: web.Request) -> str:
    ref = request.match_info["customer_ref"]
    if not ref or len(ref) > MAX_REF_CHARS or any(ord(c) < 0x20 for c in ref):
        raise web.HTTPNotFound(reason=f"There is no customer {ref[:MAX_REF_CHARS]!r}.")
    return ref


@require_api_roles(StaffRole.admin)
async def export_customer(request: web.Request) -> web.Response:
    ref = _ref(request)
    async with request.config_dict[SESSIONS]() as db, db.begin():
        document = await privacy.export_customer(
            db,
            ref,
            actor=current_principal(request).actor,
            photo_dir=request.config_dict[SETTINGS].photo_dir,
        )
    filename = f"customer-{document['customer']['id']}.json"
    return web.json_response(
        document,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@require_api_roles(StaffRole.admin)
async def erase_customer(request: web.Request) -> web.Response:
    ref = _ref(request)
    async with request.config_dict[SESSIONS]() as db, db.begin():
        erasure = await privacy.erase_customer(db, ref, actor=current_principal(request).actor)
    # Their photos' files, once the rows say erased (issue #19).
    photos.PhotoStore(request.config_dict[SETTINGS].photo_dir).remove(erasure.photo_keys)
    trackers = await privacy.clear_trackers(
        request.config_dict[RASA], erasure.conversation_ids, RasaUnavailable
    )
    for conversation_id in erasure.conversation_ids:  # open widget tabs start afresh
        await request.config_dict[HUB].end(conversation_id)
    return web.json_response({**erasure.as_json(), "trackers": trackers.as_json()})


def _reviewer_ref(request: web.Request) -> str:
    ref = request.match_info["reviewer_ref"]
    if not ref or len(ref) > MAX_REF_CHARS or any(ord(c) < 0x20 for c in ref):
        raise web.HTTPNotFound(reason=f"There is no reviewer {ref[:MAX_REF_CHARS]!r}.")
    return ref


@require_api_roles(StaffRole.admin)
async def export_reviewer(request: web.Request) -> web.Response:
    """A reviewer who is not a customer (issue #23), by email or handle."""
    ref = _reviewer_ref(request)
    actor = current_principal(request).actor
    async with request.config_dict[SESSIONS]() as db, db.begin():
        document = await reviewer_privacy.export_reviewers(db, ref, actor=actor)
    return web.json_response(
        document,
        headers={
            "Content-Disposition": 'attachment; filename="reviewer.json"',
            "Cache-Control": "no-store",
        },
    )


@require_api_roles(StaffRole.admin)
async def erase_reviewer(request: web.Request) -> web.Response:
    ref = _reviewer_ref(request)
    actor = current_principal(request).actor
    async with request.config_dict[SESSIONS]() as db, db.begin():
        counts = await reviewer_privacy.erase_reviewers(db, ref, actor=actor)
    return web.json_response({"counts": counts})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/customers/{customer_ref}/export", export_customer)
    app.router.add_post("/customers/{customer_ref}/erase", erase_customer)
    app.router.add_get("/reviewers/{reviewer_ref}/export", export_reviewer)
    app.router.add_post("/reviewers/{reviewer_ref}/erase", erase_reviewer)


_OBJECTS = {"type": "array", "items": {"type": "object"}}
_EXPORT = {
    "type": "object",
    "required": [
        "format",
        "exported_at",
        "customer",
        "orders",
        "subscriptions",
        "lifecycles",
        "conversations",
        "feedback",
        "survey_dispatches",
        "escalations",
        "actions",
    ],
    "properties": {
        "format": {"type": "string", "const": privacy.EXPORT_FORMAT},
        "exported_at": {"type": "string", "format": "date-time"},
        "customer": {
            "type": "object",
            "required": ["id", "external_id", "email", "name"],
            "properties": {
                "id": {"type": "integer"},
                "external_id": {"type": "string"},
                "email": {"type": ["string", "null"]},
                "name": {"type": ["string", "null"]},
            },
        },
        "orders": _OBJECTS,
        "subscriptions": _OBJECTS,
        "lifecycles": _OBJECTS,
        "conversations": _OBJECTS,
        "feedback": _OBJECTS,
        "survey_dispatches": _OBJECTS,
        "escalations": _OBJECTS,
        # Photos the customer sent (issue #19): each row, the image in data_base64.
        "photos": _OBJECTS,
        "actions": _OBJECTS,
    },
}
_ERASURE = {
    "type": "object",
    "required": ["customer_id", "already_erased", "conversation_ids", "counts", "trackers"],
    "properties": {
        "customer_id": {"type": "integer"},
        "already_erased": {"type": "boolean"},
        "conversation_ids": {"type": "array", "items": {"type": "string"}},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "trackers": {
            "type": "object",
            "required": ["cleared", "failed", "error"],
            "properties": {
                "cleared": {"type": "integer"},
                "failed": {"type": "array", "items": {"type": "string"}},
                "error": {"type": ["string", "null"]},
            },
        },
    },
}
_REF = {
    "name": "customer_ref",
    "in": "path",
    "required": True,
    "description": "The shop's customer id, or our numeric id when no shop id matches.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_REF_CHARS},
}

_REVIEWER_REF = {
    "name": "reviewer_ref",
    "in": "path",
    "required": True,
    "description": "A reviewer's email (any case) or handle (exact); every matching reviewer.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_REF_CHARS},
}

OPENAPI_SCHEMAS: dict[str, Any] = {"CustomerExport": _EXPORT, "CustomerErasure": _ERASURE}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/reviewers/{reviewer_ref}/export": {
        "get": {
            "summary": "Everything held about a reviewer who is not a customer (admin; audited)",
            "parameters": [_REVIEWER_REF],
            "responses": {
                "200": {
                    "description": "the export",
                    **json_content(
                        {
                            "type": "object",
                            "required": ["format", "exported_at", "reviewers"],
                            "properties": {
                                "format": {"type": "string"},
                                "exported_at": {"type": "string", "format": "date-time"},
                                "reviewers": _OBJECTS,
                            },
                        }
                    ),
                },
                **error_responses(401, 403, 404),
            },
        }
    },
    "/api/reviewers/{reviewer_ref}/erase": {
        "post": {
            "summary": "Erase a reviewer's email, handle, texts and URLs, keep the scores (admin; audited; idempotent)",
            "parameters": [_REVIEWER_REF],
            "responses": {
                "200": {
                    "description": "erased",
                    **json_content(
                        {
                            "type": "object",
                            "required": ["counts"],
                            "properties": {
                                "counts": {
                                    "type": "object",
                                    "additionalProperties": {"type": "integer"},
                                }
                            },
                        }
                    ),
                },
                **error_responses(401, 403, 404),
            },
        }
    },
    "/api/customers/{customer_ref}/export": {
        "get": {
            "summary": "Everything held about a customer, as JSON (admin; audited)",
            "parameters": [_REF],
            "responses": {
                "200": {
                    "description": "the export",
                    **json_content({"$ref": "#/components/schemas/CustomerExport"}),
                },
                **error_responses(401, 403, 404),
            },
        }
    },
    "/api/customers/{customer_ref}/erase": {
        "post": {
            "summary": (
                "Erase a customer's personal data and transcripts, keep anonymised scores "
                "(admin; audited; idempotent)"
            ),
            "parameters": [_REF],
            "responses": {
                "200": {
                    "description": "erased; `trackers.failed` lists Rasa trackers not cleared",
                    **json_content({"$ref": "#/components/schemas/CustomerErasure"}),
                },
                **error_responses(401, 403, 404),
            },
        }
    },
}
