"""POST /api/events: the shop's signed events webhook (SPEC §6).

Checks in this order: body size (413), `X-Signature` (`t=<unix seconds>,v1=<hex HMAC of
"<t>.<raw body>">`, timestamp within EVENTS_SIGNATURE_TOLERANCE_SECONDS: 401), JSON
(400), schema (422 naming the field). A valid event is then stored as pending (grouped
with concurrent requests into one INSERT, bot/web/events_worker.py) and answered 202; the
events worker applies it moments later. The same id again changes nothing and answers
with the stored state: 202 while pending, 200 once applied (its result) or failed (the
error). Authentication is the signature alone: the path is in `PUBLIC_PATHS` of the
API's auth middleware.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.domain import safe_json, shop_events
from bot.domain.enums import ShopEventStatus
from bot.web.api.openapi import error_responses, json_content
from bot.web.errors import json_error
from bot.web.events_worker import EVENTS_QUEUE
from bot.web.keys import SETTINGS

SIGNATURE_HEADER = "X-Signature"


class BodyTooLarge(Exception):
    pass


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes (declared or actually sent)."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge
    body = bytearray()
    while chunk := await request.content.read(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


async def receive_event(request: web.Request) -> web.Response:
    settings = request.config_dict[SETTINGS]
    try:
        body = await read_limited(request, settings.events_max_body_bytes)
    except BodyTooLarge:
        return json_error(
            413,
            "payload_too_large",
            f"Events are limited to {settings.events_max_body_bytes} bytes.",
        )
    problem = shop_events.check_signature(
        settings.events_secret,
        body,
        request.headers.get(SIGNATURE_HEADER),
        tolerance_seconds=settings.events_signature_tolerance_seconds,
    )
    if problem is not None:
        return signature_refused(problem, settings.events_signature_tolerance_seconds)
    try:
        payload = safe_json.loads(body)
    except safe_json.BadJson as exc:
        return json_error(exc.status, exc.code, exc.message)
    event = shop_events.parse_event(payload)
    accepted = await request.config_dict[EVENTS_QUEUE].ingest.accept(event)
    return web.json_response(
        answer(accepted), status=202 if accepted.status is ShopEventStatus.pending else 200
    )


SIGNATURE_FORMAT = (
    '\'t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" with the shared '
    "EVENTS_SECRET>' (docs/events.md)"
)


def signature_refused(problem: shop_events.SignatureProblem, tolerance: int) -> web.Response:
    if problem is shop_events.SignatureProblem.stale:
        return json_error(
            401,
            "stale_signature",
            f"The {SIGNATURE_HEADER} timestamp is more than {tolerance} s away from the "
            "server's clock: sign every delivery, retries included, with the current time "
            "(and check the sending server's clock). Only the signature's time is limited, "
            "not the event's occurred_at.",
        )
    what = "Wrong" if problem is shop_events.SignatureProblem.wrong else "Missing or malformed"
    return json_error(401, "bad_signature", f"{what} {SIGNATURE_HEADER}: send {SIGNATURE_FORMAT}.")


def answer(accepted: shop_events.Accepted) -> dict[str, Any]:
    failed = accepted.status is ShopEventStatus.failed
    stored = accepted.result or {}
    return {
        "id": accepted.id,
        "replayed": accepted.replayed,
        "status": accepted.status.value,
        "result": None if failed else accepted.result,
        "error": stored.get("error") if failed else None,
    }


def add_routes(app: web.Application) -> None:
    app.router.add_post("/events", receive_event)


_TIME = {"type": "string", "format": "date-time"}
_AMOUNT = {"type": ["string", "number"], "description": 'decimal, e.g. "59.90"'}
_ORDER = {
    "type": "object",
    "required": ["number"],
    "properties": {
        "number": {"type": "string", "maxLength": 32},
        "items": {
            "type": "array",
            "minItems": 1,
            "description": "required for order.placed",
            "items": {
                "type": "object",
                "required": ["sku", "name", "qty", "price"],
                "properties": {
                    "sku": {"type": "string"},
                    "name": {"type": "string"},
                    "qty": {"type": "integer", "minimum": 1},
                    "price": _AMOUNT,
                },
            },
        },
        "total": _AMOUNT,
        "currency": {"type": "string", "minLength": 3, "maxLength": 3},
        "placed_at": _TIME,
        "shipping_address": {"type": "string"},
        "carrier": {"type": "string"},
        "tracking_number": {"type": "string"},
        "estimated_delivery": _TIME,
    },
}
_SUBSCRIPTION = {
    "type": "object",
    "required": ["id"],
    "description": "plan, price and the period are required the first time a subscription is seen",
    "properties": {
        "id": {"type": "string", "maxLength": 64},
        "plan": {"type": "string"},
        "price": _AMOUNT,
        "currency": {"type": "string"},
        "period_start": _TIME,
        "period_end": _TIME,
    },
}
OPENAPI_SCHEMAS: dict[str, Any] = {
    "ShopEvent": {
        "type": "object",
        "required": ["id", "type", "occurred_at", "customer"],
        "properties": {
            "id": {
                "type": "string",
                "maxLength": 100,
                "description": "unique per event: idempotency key",
            },
            "type": {"type": "string", "enum": list(shop_events.EVENT_TYPES)},
            "occurred_at": _TIME,
            "customer": {
                "type": "object",
                "required": ["external_id"],
                "properties": {
                    "external_id": {"type": "string"},
                    "email": {"type": "string"},
                    "name": {"type": "string"},
                },
            },
            "order": {**_ORDER, "description": "order.* events"},
            "subscription": {**_SUBSCRIPTION, "description": "subscription.* events"},
        },
    },
}
_ANSWER = {
    "type": "object",
    "required": ["id", "replayed", "status", "result", "error"],
    "properties": {
        "id": {"type": "string"},
        "replayed": {"type": "boolean"},
        "status": {"type": "string", "enum": [s.value for s in ShopEventStatus]},
        "result": {"type": ["object", "null"], "description": "what the event did, once applied"},
        "error": {
            "type": ["object", "null"],
            "description": "why it was refused when applied (status failed)",
        },
    },
}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/events": {
        "post": {
            "summary": "Receive a shop event (signed webhook; see docs/events.md)",
            "security": [],
            "parameters": [
                {
                    "name": SIGNATURE_HEADER,
                    "in": "header",
                    "required": True,
                    "schema": {
                        "type": "string",
                        "pattern": "^t=[0-9]{1,12}(,v1=[0-9a-f]{64})+$",
                    },
                    "description": 't=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" '
                    "with EVENTS_SECRET>; t must be within "
                    "EVENTS_SIGNATURE_TOLERANCE_SECONDS (default 300) of the server's clock, "
                    "else 401 stale_signature",
                }
            ],
            "requestBody": {
                "required": True,
                **json_content({"$ref": "#/components/schemas/ShopEvent"}),
            },
            "responses": {
                "202": {
                    "description": "accepted: stored as pending, applied moments later "
                    "(also a replay of an event still pending)",
                    **json_content(_ANSWER),
                },
                "200": {
                    "description": "a replay of an event already applied (its result) or "
                    "refused when applied (`status` failed, `error`)",
                    **json_content(_ANSWER),
                },
                **error_responses(400, 401, 413, 422),
            },
        }
    }
}
