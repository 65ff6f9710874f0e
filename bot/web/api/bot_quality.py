"""How well the bot understands (issue #24): containment, fallback rate, misunderstanding
hand-over rate, rephrase rate and flagged turns per 100 conversations, overall, by week and
by intent, each with its n, and the customers' "did this help?" on knowledge answers;
`/api/bot-quality/retrainings`: the same figures for equal windows before and after each
change of the bot's model. Definitions: bot/domain/bot_analytics.py. For CX managers,
admins and bot trainers; unknown or repeated query parameters are refused (422)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from bot.domain import bot_analytics, feedback_query
from bot.domain.enums import StaffRole
from bot.domain.errors import InvalidInput
from bot.web.api.auth import require_api_roles
from bot.web.api.openapi import error_responses, ok_response, query_param, range_params
from bot.web.keys import SESSIONS

ROLES = (StaffRole.cx_manager, StaffRole.admin, StaffRole.bot_trainer)


def _only(request: web.Request, allowed: tuple[str, ...]) -> None:
    for name in request.query:
        if name not in allowed:
            raise InvalidInput(f"Unknown query parameter '{name}'.")
        if len(request.query.getall(name)) > 1:
            raise InvalidInput(f"'{name}' may be given only once.")


@require_api_roles(*ROLES)
async def get_bot_quality(request: web.Request) -> web.Response:
    _only(request, ("from", "to", "tz"))
    date_range = feedback_query.parse_range(
        request.query.get("from"), request.query.get("to"), request.query.get("tz")
    )
    async with request.config_dict[SESSIONS]() as db:
        report = await bot_analytics.understanding_quality(
            db, date_range.start_utc, date_range.end_utc
        )
    return web.json_response({"range": date_range.as_json(), **report})


MAX_WINDOW_DAYS = 90


@require_api_roles(*ROLES)
async def get_retrainings(request: web.Request) -> web.Response:
    _only(request, ("window_days",))
    raw = request.query.get("window_days", "7")
    try:
        days = int(raw)
    except ValueError as exc:
        raise InvalidInput("'window_days' must be a whole number of days.") from exc
    if not 1 <= days <= MAX_WINDOW_DAYS:
        raise InvalidInput(f"'window_days' must be between 1 and {MAX_WINDOW_DAYS}.")
    async with request.config_dict[SESSIONS]() as db:
        report = await bot_analytics.retrainings(
            db, dt.datetime.now(dt.timezone.utc), dt.timedelta(days=days)
        )
    return web.json_response(report)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/bot-quality", get_bot_quality)
    app.router.add_get("/bot-quality/retrainings", get_retrainings)


# ---- OpenAPI ---------------------------------------------------------------------------------

_RATE = {"type": ["number", "null"], "description": "a share 0..1; null without a base"}
_FIGURES: dict[str, Any] = {
    "type": "object",
    "required": [
        "conversations",
        "turns",
        "containment",
        "fallback_rate",
        "misunderstanding_handover_rate",
        "rephrase_rate",
        "flagged_per_100_conversations",
    ],
    "properties": {
        "conversations": {"type": "integer", "description": "n: with a customer turn"},
        "turns": {"type": "integer", "description": "n: customer turns"},
        "contained": {"type": "integer"},
        "containment": _RATE,
        "fallbacks": {"type": "integer"},
        "fallback_rate": _RATE,
        "misunderstanding_handovers": {"type": "integer"},
        "misunderstanding_handover_rate": _RATE,
        "rephrases": {"type": "integer"},
        "rephrase_rate": _RATE,
        "flagged_turns": {"type": "integer"},
        "flagged_rate": _RATE,
        "flagged_per_100_conversations": {"type": ["number", "null"]},
        "answers_rated": {"type": "integer", "description": "n: knowledge answers rated yes or no"},
        "helpful": {"type": "integer"},
        "helpful_rate": _RATE,
    },
}
_WINDOW = {
    "allOf": [
        {"$ref": "#/components/schemas/BotQualityFigures"},
        {
            "type": "object",
            "required": ["from", "to"],
            "properties": {
                "from": {"type": "string", "format": "date-time"},
                "to": {"type": "string", "format": "date-time", "description": "excluded"},
            },
        },
    ]
}
_RETRAININGS = {
    "type": "object",
    "required": ["window_days", "models", "retrainings"],
    "properties": {
        "window_days": {"type": "number"},
        "models": {
            "type": "array",
            "description": "newest first",
            "items": {
                "type": "object",
                "required": ["model_id", "first_seen", "last_seen", "turns"],
                "properties": {
                    "model_id": {"type": "string"},
                    "first_seen": {"type": "string", "format": "date-time"},
                    "last_seen": {"type": "string", "format": "date-time"},
                    "turns": {"type": "integer"},
                },
            },
        },
        "retrainings": {
            "type": "array",
            "description": "newest first (at most 10)",
            "items": {
                "type": "object",
                "required": [
                    "previous_model_id",
                    "model_id",
                    "changed_at",
                    "window_days",
                    "before",
                    "after",
                ],
                "properties": {
                    "previous_model_id": {"type": "string"},
                    "model_id": {"type": "string"},
                    "changed_at": {
                        "type": "string",
                        "format": "date-time",
                        "description": "the new model's first turn",
                    },
                    "window_days": {"type": "number", "description": "length of each window"},
                    "before": _WINDOW,
                    "after": _WINDOW,
                },
            },
        },
    },
}
_REPORT = {
    "type": "object",
    "required": ["range", "overall", "by_week", "by_intent"],
    "properties": {
        "range": {"type": "object"},
        "overall": {"$ref": "#/components/schemas/BotQualityFigures"},
        "by_week": {
            "type": "array",
            "items": {
                "allOf": [
                    {"$ref": "#/components/schemas/BotQualityFigures"},
                    {
                        "type": "object",
                        "required": ["week"],
                        "properties": {
                            "week": {
                                "type": "string",
                                "format": "date",
                                "description": "Monday of the ISO week (UTC)",
                            }
                        },
                    },
                ]
            },
        },
        "by_intent": {
            "type": "array",
            "items": {
                "allOf": [
                    {"$ref": "#/components/schemas/BotQualityFigures"},
                    {
                        "type": "object",
                        "required": ["intent"],
                        "properties": {"intent": {"type": "string"}},
                    },
                ]
            },
        },
    },
}
OPENAPI_SCHEMAS: dict[str, Any] = {
    "BotQualityFigures": _FIGURES,
    "BotQuality": _REPORT,
    "BotRetrainings": _RETRAININGS,
}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/bot-quality": {
        "get": {
            "summary": "How well the bot understands: containment, fallback, misunderstanding "
            "hand-over and rephrase rates, flagged turns per 100 conversations (issue #24)",
            "parameters": range_params(89),
            "responses": {
                "200": ok_response("the figures", {"$ref": "#/components/schemas/BotQuality"}),
                **error_responses(401, 403, 422),
            },
        }
    },
    "/api/bot-quality/retrainings": {
        "get": {
            "summary": "The bot figures for equal windows before and after each change of its "
            "trained model (issue #24)",
            "parameters": [
                query_param(
                    "window_days",
                    "Longest window on each side, 1..90 (default 7); "
                    "shortened so both sides are as long and each has one model.",
                    {"type": "integer", "minimum": 1, "maximum": 90},
                ),
            ],
            "responses": {
                "200": ok_response(
                    "before and after each retraining",
                    {"$ref": "#/components/schemas/BotRetrainings"},
                ),
                **error_responses(401, 403, 422),
            },
        }
    },
}
