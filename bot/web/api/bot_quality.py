"""How well the bot understands (issue #24): containment, fallback rate, misunderstanding
hand-over rate, rephrase rate and flagged turns per 100 conversations, overall, by week and
by intent, each with its n. Definitions: bot/domain/bot_analytics.py. For CX managers,
admins and bot trainers; unknown or repeated query parameters are refused (422)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.domain import bot_analytics, feedback_query
from bot.domain.errors import InvalidInput
from bot.storage.models import StaffRole
from bot.web.api.auth import require_api_roles
from bot.web.api.openapi import error_responses, ok_response, query_param
from bot.web.keys import SESSIONS

ROLES = (StaffRole.cx_manager, StaffRole.admin, StaffRole.bot_trainer)


@require_api_roles(*ROLES)
async def get_bot_quality(request: web.Request) -> web.Response:
    for name in request.query:
        if name not in ("from", "to", "tz"):
            raise InvalidInput(f"Unknown query parameter '{name}'.")
        if len(request.query.getall(name)) > 1:
            raise InvalidInput(f"'{name}' may be given only once.")
    date_range = feedback_query.parse_range(
        request.query.get("from"), request.query.get("to"), request.query.get("tz")
    )
    async with request.config_dict[SESSIONS]() as db:
        report = await bot_analytics.understanding_quality(
            db, date_range.start_utc, date_range.end_utc
        )
    return web.json_response({"range": date_range.as_json(), **report})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/bot-quality", get_bot_quality)


# ---- OpenAPI ---------------------------------------------------------------------------------

_RATE = {"type": ["number", "null"], "description": "a share 0..1; null without a base"}
_FIGURES: dict[str, Any] = {
    "type": "object",
    "required": ["conversations", "turns", "containment", "fallback_rate",
                 "misunderstanding_handover_rate", "rephrase_rate",
                 "flagged_per_100_conversations"],
    "properties": {
        "conversations": {"type": "integer", "description": "n: with a customer turn"},
        "turns": {"type": "integer", "description": "n: customer turns"},
        "contained": {"type": "integer"}, "containment": _RATE,
        "fallbacks": {"type": "integer"}, "fallback_rate": _RATE,
        "misunderstanding_handovers": {"type": "integer"},
        "misunderstanding_handover_rate": _RATE,
        "rephrases": {"type": "integer"}, "rephrase_rate": _RATE,
        "flagged_turns": {"type": "integer"},
        "flagged_per_100_conversations": {"type": ["number", "null"]},
    },
}  # fmt: skip
_REPORT = {
    "type": "object",
    "required": ["range", "overall", "by_week", "by_intent"],
    "properties": {
        "range": {"type": "object"},
        "overall": {"$ref": "#/components/schemas/BotQualityFigures"},
        "by_week": {"type": "array", "items": {"allOf": [
            {"$ref": "#/components/schemas/BotQualityFigures"},
            {"type": "object", "required": ["week"],
             "properties": {"week": {"type": "string", "format": "date",
                                     "description": "Monday of the ISO week (UTC)"}}}]}},
        "by_intent": {"type": "array", "items": {"allOf": [
            {"$ref": "#/components/schemas/BotQualityFigures"},
            {"type": "object", "required": ["intent"],
             "properties": {"intent": {"type": "string"}}}]}},
    },
}  # fmt: skip
OPENAPI_SCHEMAS: dict[str, Any] = {"BotQualityFigures": _FIGURES, "BotQuality": _REPORT}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/bot-quality": {
        "get": {
            "summary": "How well the bot understands: containment, fallback, misunderstanding "
            "hand-over and rephrase rates, flagged turns per 100 conversations (issue #24)",
            "parameters": [
                query_param("from", "First day (default: 89 days before `to`).",
                            {"type": "string", "format": "date"}),
                query_param("to", "Last day, included (default today).",
                            {"type": "string", "format": "date"}),
                query_param("tz", "IANA time zone of the days (default UTC).", {"type": "string"}),
            ],
            "responses": {
                "200": ok_response("the figures", {"$ref": "#/components/schemas/BotQuality"}),
                **error_responses(401, 403, 422),
            },
        }
    }
}  # fmt: skip
