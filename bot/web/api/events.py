"""POST /api/events: the shop's signed events webhook (SPEC §6).

Checks in this order: body size (413), `X-Signature` HMAC over the raw body (401), JSON
(400), schema (422 naming the field), then the event is applied once (a replay answers 200
with the first result and `"replayed": true`). Authentication is the signature alone: the
path is in `PUBLIC_PATHS` of the API's auth middleware.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bot.domain import shop_events
from bot.web.api.openapi import error_responses, json_content
from bot.web.background import spawn
from bot.web.errors import json_error
from bot.web.keys import SESSIONS, SETTINGS
from bot.web.proactive import offer_after_event

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
    if not shop_events.signature_ok(
        settings.events_secret, body, request.headers.get(SIGNATURE_HEADER)
    ):
        return json_error(
            401,
            "bad_signature",
            f"Missing or wrong {SIGNATURE_HEADER}: send 'sha256=<hex HMAC-SHA256 of the raw "
            "body with the shared EVENTS_SECRET>'.",
        )
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return json_error(400, "bad_request", "The request body must be JSON.")
    event = shop_events.parse_event(payload)
    receipt = await shop_events.receive(request.config_dict[SESSIONS], event)
    if not receipt.replayed and receipt.result.get("surveys_scheduled"):
        # Answer the shop now; the live offer may wait on Rasa.
        spawn(
            request.config_dict,
            offer_after_event(request.config_dict, event.customer.external_id),
            name=f"offer-survey-{event.id}",
        )
    return web.json_response(
        {"id": event.id, "replayed": receipt.replayed, "result": receipt.result}
    )


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
                    "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
                    "description": "sha256=<hex HMAC-SHA256 of the raw body with EVENTS_SECRET>",
                }
            ],
            "requestBody": {
                "required": True,
                **json_content({"$ref": "#/components/schemas/ShopEvent"}),
            },
            "responses": {
                "200": {
                    "description": "applied, or a replay of an event already received",
                    **json_content(
                        {
                            "type": "object",
                            "required": ["id", "replayed", "result"],
                            "properties": {
                                "id": {"type": "string"},
                                "replayed": {"type": "boolean"},
                                "result": {"type": "object"},
                            },
                        }
                    ),
                },
                **error_responses(400, 401, 409, 413, 422),
            },
        }
    }
}
