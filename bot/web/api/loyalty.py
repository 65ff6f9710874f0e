"""Loyalty API (cx_manager and admin): repeat rate, lifecycles, renewals, return rates, cohorts.

Definitions: bot/domain/loyalty.py. Unknown or repeated query parameters are refused (422),
as on the dashboard API.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from bot.domain import feedback_query, loyalty
from bot.domain.errors import InvalidInput
from bot.domain.feedback_query import DateRange
from bot.storage.models import utcnow
from bot.web.api.auth import require_api_roles
from bot.web.api.dashboard import DASHBOARD_ROLES, min_answers
from bot.web.api.openapi import error_responses, ok_response, query_param
from bot.web.keys import SESSIONS

DEFAULT_RANGE_DAYS = 365


def _check(query: MultiMapping[str], allowed: set[str]) -> None:
    for name in query:
        if name not in allowed:
            raise InvalidInput(f"Unknown query parameter '{name}'.")
        if len(query.getall(name)) > 1:
            raise InvalidInput(f"'{name}' may be given only once.")


def parse_range(query: MultiMapping[str], today: date | None = None) -> DateRange:
    """`from`/`to`/`tz` as on the dashboard, but the default range is the last 365 days."""
    raw_from, raw_to, raw_tz = query.get("from"), query.get("to"), query.get("tz")
    if not raw_from:
        end = feedback_query.parse_range(None, raw_to, raw_tz, today).end
        raw_from = (end - timedelta(days=DEFAULT_RANGE_DAYS - 1)).isoformat()
    return feedback_query.parse_range(raw_from, raw_to, raw_tz, today)


@require_api_roles(*DASHBOARD_ROLES)
async def get_loyalty(request: web.Request) -> web.Response:
    _check(request.query, {"from", "to", "tz", "window"})
    date_range = parse_range(request.query)
    window = feedback_query.parse_int(
        "window", request.query.get("window"), 1, loyalty.MAX_WINDOW_DAYS
    )
    query = loyalty.LoyaltyQuery(date_range, utcnow(), window or loyalty.DEFAULT_WINDOW_DAYS)
    async with request.config_dict[SESSIONS]() as db:
        found = await loyalty.overview(db, query)
    # Bars on fewer lifecycles than this are drawn as "too few" (DASHBOARD_MIN_ANSWERS).
    return web.json_response({**found.as_json(), "min_answers": min_answers(request)})


@require_api_roles(*DASHBOARD_ROLES)
async def get_cohorts(request: web.Request) -> web.Response:
    _check(request.query, {"from", "to", "tz", "months"})
    date_range = parse_range(request.query)
    months = feedback_query.parse_int(
        "months", request.query.get("months"), 1, loyalty.MAX_COHORT_MONTHS
    )
    async with request.config_dict[SESSIONS]() as db:
        table = await loyalty.cohorts(
            db, date_range, utcnow(), months or loyalty.DEFAULT_COHORT_MONTHS
        )
    return web.json_response(table.as_json())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/loyalty", get_loyalty)
    app.router.add_get("/loyalty/cohorts", get_cohorts)


# ---- OpenAPI ---------------------------------------------------------------------------------


_DATE = {"type": "string", "format": "date"}
_RANGE_PARAMS = [
    query_param(
        "from", "First day of first purchases / lifecycles (default: 364 days before `to`).", _DATE
    ),
    query_param("to", "Last day (included; default today in `tz`).", _DATE),
    query_param("tz", "IANA time zone of the days and months (default UTC).", {"type": "string"}),
]
_RATE = {"type": ["number", "null"], "description": "percent, one decimal; null without a base"}
_GROUP = {
    "type": "object",
    "required": ["key", "lifecycles", "returned", "rate"],
    "properties": {
        "key": {"type": "string"},
        "lifecycles": {"type": "integer"},
        "returned": {"type": "integer"},
        "rate": _RATE,
        "interval": {
            "type": ["array", "null"],
            "items": {"type": "number"},
            "description": "95 % Wilson interval of the rate, percent",
        },
    },
}
_GROUPS = {"type": "array", "items": {"$ref": "#/components/schemas/LoyaltyReturnGroup"}}
_LOYALTY = {
    "type": "object",
    "required": ["range", "as_of", "window_days", "repeat", "lifecycles", "renewal", "return_rate"],
    "properties": {
        "min_answers": {
            "type": "integer",
            "description": "DASHBOARD_MIN_ANSWERS: a group on fewer lifecycles is 'too few'",
        },
        "range": {"type": "object"},
        "as_of": {"type": "string", "format": "date-time"},
        "window_days": {"type": "integer"},
        "repeat": {
            "type": "object",
            "description": "Customers whose first purchase lifecycle opened in the range (and "
            "at least window_days before as_of) and how many had a second one within the window; "
            "pending: first purchase too recent to judge.",
            "properties": {
                "customers": {"type": "integer"},
                "repeaters": {"type": "integer"},
                "rate": _RATE,
                "pending": {"type": "integer"},
            },
        },
        "lifecycles": {
            "type": "object",
            "description": "Purchase lifecycles opened in the range per customer.",
            "properties": {
                "customers": {"type": "integer"},
                "lifecycles": {"type": "integer"},
                "per_customer": {"type": ["number", "null"]},
                "new_customers": {"type": "integer"},
                "returning_customers": {"type": "integer"},
                "distribution": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "lifecycles": {"type": "string"},
                            "customers": {"type": "integer"},
                        },
                    },
                },
            },
        },
        "renewal": {
            "type": "object",
            "description": "Subscription periods that ended in the range; renewed: followed by "
            "another period of the same subscription.",
            "properties": {
                "periods": {"type": "integer"},
                "renewed": {"type": "integer"},
                "rate": _RATE,
            },
        },
        "return_rate": {
            "type": "object",
            "description": "Purchase lifecycles opened in the range whose customer's next one "
            "opened within the window, by the lifecycle's CSAT band, NPS band, support and "
            "acquisition source.",
            "properties": {
                "overall": _GROUP,
                "pending": {"type": "integer"},
                "by_csat": _GROUPS,
                "by_nps": _GROUPS,
                "by_support": _GROUPS,
                "by_acquisition": _GROUPS,
            },
        },
    },
}
_CELL = {
    "type": ["object", "null"],
    "description": "null: that month has not started yet",
    "properties": {
        "offset": {"type": "integer"},
        "customers": {"type": "integer"},
        "percent": _RATE,
    },
}
_COHORTS = {
    "type": "object",
    "required": ["range", "as_of", "months", "cohorts", "average"],
    "properties": {
        "range": {"type": "object"},
        "as_of": {"type": "string", "format": "date-time"},
        "months": {"type": "integer"},
        "cohorts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "month": {"type": "string", "description": "YYYY-MM of the first purchase"},
                    "customers": {"type": "integer"},
                    "cells": {"type": "array", "items": _CELL},
                },
            },
        },
        "average": {"type": "array", "items": _CELL},
    },
}

OPENAPI_SCHEMAS: dict[str, Any] = {
    "LoyaltyReturnGroup": _GROUP,
    "Loyalty": _LOYALTY,
    "LoyaltyCohorts": _COHORTS,
}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/loyalty": {
        "get": {
            "summary": "Repeat rate, lifecycles per customer, renewal rate, return rate by "
            "experience (cx_manager, admin)",
            "parameters": [
                *_RANGE_PARAMS,
                query_param(
                    "window",
                    "Days within which a next lifecycle counts as a return (default 90).",
                    {"type": "integer", "minimum": 1, "maximum": loyalty.MAX_WINDOW_DAYS},
                ),
            ],
            "responses": {
                "200": ok_response("loyalty figures", {"$ref": "#/components/schemas/Loyalty"}),
                **error_responses(401, 403, 422),
            },
        }
    },
    "/api/loyalty/cohorts": {
        "get": {
            "summary": "Retention by month of first purchase (cx_manager, admin)",
            "parameters": [
                *_RANGE_PARAMS,
                query_param(
                    "months",
                    "Months after the first purchase (default 12).",
                    {"type": "integer", "minimum": 1, "maximum": loyalty.MAX_COHORT_MONTHS},
                ),
            ],
            "responses": {
                "200": ok_response("cohorts", {"$ref": "#/components/schemas/LoyaltyCohorts"}),
                **error_responses(401, 403, 422),
            },
        }
    },
}
