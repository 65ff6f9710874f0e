"""POST /api/feedback: feedback from other channels (admin, cx_manager; API token or staff).

The CX dashboard's module answers GET on the same path; the OpenAPI builder merges both.
"""

from __future__ import annotations

import io
from typing import Any

from aiohttp import web

from bot.domain import intake, web_reviews
from bot.domain.enums import StaffRole
from bot.storage.models import Escalation, Feedback
from bot.web.api.auth import require_api_roles
from bot.web.api.events import BodyTooLarge, read_limited
from bot.web.api.openapi import error_responses, json_content
from bot.web.errors import json_error, read_json_object
from bot.web.keys import SESSIONS, SETTINGS, STAFF_HUB


def feedback_json(row: Feedback) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind.value,
        "score": row.score,
        "text": row.text,
        "channel": row.channel.value,
        "source": row.source.value,
        "stage": row.stage.value if row.stage else None,
        "lifecycle_id": row.lifecycle_id,
        "sentiment": row.sentiment,
        "themes": row.themes,
        "created_at": row.created_at.isoformat(),
    }


def escalation_json(escalation: Escalation) -> dict[str, Any]:
    return {
        "id": escalation.id,
        "reason": escalation.reason.value,
        "priority": escalation.priority,
        "due_at": escalation.due_at.isoformat() if escalation.due_at else None,
    }


def _flatten(body: dict[str, Any]) -> dict[str, Any]:
    customer = body.get("customer")
    if not isinstance(customer, dict):
        customer = {}
    return {
        **body,
        "customer_external_id": customer.get("external_id"),
        "customer_email": customer.get("email"),
    }


async def _import_export(request: web.Request, name: str) -> web.Response:
    """`?format=trustpilot|judgeme|google|social`: the body is the service's export file."""
    fmt = web_reviews.get_format(name)
    try:
        body = await read_limited(request, intake.MAX_CSV_BYTES)
    except BodyTooLarge:
        return json_error(
            413, "payload_too_large", f"Imports are limited to {intake.MAX_CSV_BYTES} bytes."
        )
    settings = request.config_dict[SETTINGS]
    report, escalation_ids = await web_reviews.import_reviews(
        request.config_dict[SESSIONS],
        web_reviews.read_reviews(io.BytesIO(body), fmt),
        due_hours=settings.detractor_due_hours,
        unit="review" if fmt.json else "line",
    )
    if escalation_ids:
        await request.config_dict[STAFF_HUB].queue_changed()  # live in open consoles
    return web.json_response({"format": fmt.name, **report.as_json()})


@require_api_roles(StaffRole.admin, StaffRole.cx_manager)
async def post_feedback(request: web.Request) -> web.Response:
    name = request.query.get("format")
    if name is not None and name != "product":
        return await _import_export(request, name)
    body = await read_json_object(request)
    item = intake.parse_item(_flatten(body), ("customer.external_id", "customer.email"))
    settings = request.config_dict[SETTINGS]
    async with request.config_dict[SESSIONS]() as db, db.begin():
        result = await intake.record_item(
            db,
            item,
            due_hours=settings.detractor_due_hours,
        )
    if result.escalation is not None:
        await request.config_dict[STAFF_HUB].queue_changed()  # live in open consoles
    return web.json_response(
        {
            "duplicate": not result.created,
            "feedback": [feedback_json(row) for row in result.feedback],
            "escalation": escalation_json(result.escalation) if result.escalation else None,
        },
        status=201 if result.created else 200,
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/feedback", post_feedback)


_RESULT = {
    "type": "object",
    "required": ["duplicate", "feedback", "escalation"],
    "properties": {
        "duplicate": {"type": "boolean"},
        "feedback": {"type": "array", "items": {"type": "object"}},
        "escalation": {
            "type": ["object", "null"],
            "description": "the follow-up opened for a detractor (due_at = now + DETRACTOR_DUE_HOURS)",
        },
    },
}
OPENAPI_SCHEMAS: dict[str, Any] = {
    "FeedbackIntake": {
        "type": "object",
        "required": ["channel", "customer", "occurred_at"],
        "properties": {
            "channel": {"type": "string", "enum": [c.value for c in intake.INTAKE_CHANNELS]},
            "customer": {
                "type": "object",
                "description": "external_id, or email when the id is unknown",
                "properties": {"external_id": {"type": "string"}, "email": {"type": "string"}},
            },
            "occurred_at": {"type": "string", "format": "date-time"},
            "kind": {
                "type": "string",
                "enum": [k.value for k in intake.INTAKE_KINDS],
                "description": "default comment; csat/ces/nps need a score",
            },
            "score": {"type": "integer"},
            "text": {"type": "string", "maxLength": 5000},
            "external_id": {
                "type": "string",
                "description": "your id of this item; makes re-sending safe (else the content is the key)",
            },
        },
    }
}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/feedback": {
        "post": {
            "summary": "Record feedback from another channel (admin, cx_manager)",
            "description": "With `?format=trustpilot|judgeme|google|social` the body is that "
            "service's export file (CSV, or JSON for google; up to 20 MiB) and the answer is "
            "the import report: imported, updated, duplicates, unattributed, escalations and "
            "errors by line (docs/web-reviews.md). Without it (or `format=product`) the body "
            "is one FeedbackIntake item.",
            "parameters": [
                {
                    "name": "format",
                    "in": "query",
                    "required": False,
                    "schema": {
                        "type": "string",
                        "enum": ["product", "trustpilot", "judgeme", "google", "social"],
                    },
                }
            ],
            "requestBody": {
                "required": True,
                **json_content({"$ref": "#/components/schemas/FeedbackIntake"}),
            },
            "responses": {
                "201": {"description": "recorded", **json_content(_RESULT)},
                "200": {"description": "already recorded (duplicate)", **json_content(_RESULT)},
                **error_responses(400, 401, 403, 422),
            },
        }
    }
}
