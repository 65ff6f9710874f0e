"""Insight board API: everyone on staff reads; cx_manager and admin create, edit, move, export.

Rules and definitions: bot/domain/insights.py.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timezone
from typing import Any

from aiohttp import web

from bot.domain import insights, staff_access
from bot.domain.enums import InsightStatus, InsightTeam
from bot.domain.errors import InvalidInput
from bot.domain.feedback_query import parse_int
from bot.storage.models import utcnow
from bot.web.api.auth import ALL_ROLES, current_principal, require_api_roles
from bot.web.api.dashboard import DASHBOARD_ROLES, neutralise, row_links
from bot.web.api.openapi import error_responses, json_content, ok_response
from bot.web.errors import read_json_object
from bot.web.keys import SESSIONS, SETTINGS

WRITERS = DASHBOARD_ROLES  # cx_manager, admin
EXPORT_COLUMNS = (
    "id",
    "title",
    "owner_team",
    "status",
    "origin",
    "criteria",
    "linked_feedback",
    "linked_customers",
    "customers_told",
    "volume_12_weeks",
    "created_by",
    "created_at",
    "updated_at",
    "applied_at",
    "csat_before",
    "csat_after",
    "nps_before",
    "nps_after",
    "ces_before",
    "ces_after",
    "negative_percent_before",
    "negative_percent_after",
    "note",
    "customer_message",
)


def _id(request: web.Request) -> int:
    try:
        return int(request.match_info["insight_id"])
    except ValueError as exc:
        raise web.HTTPNotFound(reason="Not found.") from exc


def _enum_param(raw: str | None, enum: type[Any], name: str) -> Any:
    if raw is None or raw == "":
        return None
    try:
        return enum(raw)
    except ValueError as exc:
        allowed = ", ".join(m.value for m in enum)
        raise InvalidInput(f"'{name}' must be one of: {allowed}.") from exc


def _check_query(request: web.Request, allowed: set[str]) -> None:
    for name in request.query:
        if name not in allowed:
            raise InvalidInput(f"Unknown query parameter '{name}'.")


def compare_rules(request: web.Request) -> insights.CompareRules:
    """INSIGHT_MIN_WINDOW_DAYS and DASHBOARD_MIN_ANSWERS for the before/after comparison."""
    settings = request.config_dict[SETTINGS]
    return insights.CompareRules(
        min_days=settings.insight_min_window_days, min_answers=settings.dashboard_min_answers
    )


@require_api_roles(*ALL_ROLES)
async def list_insights(request: web.Request) -> web.Response:
    _check_query(request, {"status", "team"})
    status = _enum_param(request.query.get("status"), InsightStatus, "status")
    team = _enum_param(request.query.get("team"), InsightTeam, "team")
    async with request.config_dict[SESSIONS]() as db:
        items = await insights.board(
            db, utcnow(), status=status, team=team, rules=compare_rules(request)
        )
    return web.json_response({"insights": items})


async def _detail(request: web.Request, insight_id: int, days: int | None = None) -> dict[str, Any]:
    now = utcnow()
    async with request.config_dict[SESSIONS]() as db:
        insight = await insights.get(db, insight_id)
        stats = await insights.link_stats(db, [insight_id])
        weeks = await insights.trend(db, insight, now.date())
        comparison = await insights.compare(
            db, insight, now, days or insights.DEFAULT_COMPARE_DAYS, compare_rules(request)
        )
        total, rows = await insights.linked_feedback(db, insight_id)
        # Agents read the rows of conversations in their work only (issue #22).
        principal = current_principal(request)
        if not staff_access.sees_everything(principal.role):
            readable = await staff_access.readable_conversations(
                db, principal.role, principal.staff_user_id, (r.conversation_id for r in rows)
            )
            rows = [r for r in rows if r.conversation_id in readable]
    return {
        **insights.insight_json(insight, stats.get(insight_id)),
        "volume": sum(w.volume for w in weeks),
        "trend": [
            {"start": w.start.isoformat(), "volume": w.volume, "negative": w.negative}
            for w in weeks
        ],
        "comparison": comparison.as_json() if comparison else None,
        "feedback": {
            "total": total,  # every linked row, also those not shown to an agent
            "items": [{**row.as_json(), "links": row_links(row)} for row in rows],
        },
    }


@require_api_roles(*ALL_ROLES)
async def get_insight(request: web.Request) -> web.Response:
    _check_query(request, {"days"})
    days = parse_int("days", request.query.get("days"), 1, 365)
    return web.json_response(await _detail(request, _id(request), days))


@require_api_roles(*WRITERS)
async def create_insight(request: web.Request) -> web.Response:
    draft = insights.parse_draft(await read_json_object(request))
    async with request.config_dict[SESSIONS]() as db, db.begin():
        insight = await insights.create(db, draft, current_principal(request).actor, utcnow())
    return web.json_response(await _detail(request, insight.id), status=201)


@require_api_roles(*WRITERS)
async def edit_insight(request: web.Request) -> web.Response:
    changes = await read_json_object(request)
    insight_id = _id(request)
    async with request.config_dict[SESSIONS]() as db, db.begin():
        await insights.edit(db, insight_id, changes, current_principal(request).actor, utcnow())
    return web.json_response(await _detail(request, insight_id))


def _when(raw: Any) -> datetime | None:
    """An ISO date (midnight UTC) or date-time with a UTC offset."""
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            if len(raw) == 10:
                return datetime.combine(date.fromisoformat(raw), datetime.min.time(), timezone.utc)
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if value.tzinfo is not None:
                return value.astimezone(timezone.utc)
        except ValueError:
            pass
    raise InvalidInput("'applied_at' must be a date or a date-time with a UTC offset.")


@require_api_roles(*WRITERS)
async def move_insight(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    target = _enum_param(body.get("status") or "", InsightStatus, "status")
    if target is None:
        raise InvalidInput("'status' is required.")
    notify = body.get("notify", False)
    if not isinstance(notify, bool):
        raise InvalidInput("'notify' must be true or false.")
    insight_id = _id(request)
    async with request.config_dict[SESSIONS]() as db, db.begin():
        await insights.move(
            db,
            insight_id,
            target,
            current_principal(request).actor,
            utcnow(),
            applied_at=_when(body.get("applied_at")),
            notify=notify,
        )
    return web.json_response(await _detail(request, insight_id))


@require_api_roles(*WRITERS)
async def delete_insight(request: web.Request) -> web.Response:
    async with request.config_dict[SESSIONS]() as db, db.begin():
        await insights.remove(db, _id(request), current_principal(request).actor)
    return web.json_response({"deleted": True})


# ---- export ----------------------------------------------------------------------------------


def _side(item: dict[str, Any], side: str, *path: str) -> Any:
    value: Any = (item.get("comparison") or {}).get(side)
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def export_row(item: dict[str, Any]) -> dict[str, Any]:
    linked = item["linked"]
    return {
        "id": item["id"],
        "title": item["title"],
        "owner_team": item["owner_team"],
        "status": item["status"],
        "origin": item["origin"],
        "criteria": json.dumps(item["criteria"], sort_keys=True),
        "linked_feedback": linked["feedback"],
        "linked_customers": linked["customers"],
        "customers_told": linked["told"],
        "volume_12_weeks": item["volume"],
        "created_by": item["created_by"],
        "created_at": item["created_at"],
        "updated_at": item["updated_at"],
        "applied_at": item["applied_at"],
        "csat_before": _side(item, "before", "csat", "percent"),
        "csat_after": _side(item, "after", "csat", "percent"),
        "nps_before": _side(item, "before", "nps", "score"),
        "nps_after": _side(item, "after", "nps", "score"),
        "ces_before": _side(item, "before", "ces", "mean"),
        "ces_after": _side(item, "after", "ces", "mean"),
        "negative_percent_before": _side(item, "before", "negative", "percent"),
        "negative_percent_after": _side(item, "after", "negative", "percent"),
        "note": item["note"],
        "customer_message": item["customer_message"],
    }


def board_csv(items: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for item in items:
        row = export_row(item)
        writer.writerow(
            [
                "" if row[c] is None else neutralise(row[c]) if isinstance(row[c], str) else row[c]
                for c in EXPORT_COLUMNS
            ]
        )
    return buffer.getvalue()


@require_api_roles(*WRITERS)
async def export_board(request: web.Request) -> web.Response:
    _check_query(request, {"format", "status", "team"})
    fmt = request.query.get("format", "csv")
    if fmt not in ("csv", "json"):
        raise InvalidInput("'format' must be one of: csv, json.")
    status = _enum_param(request.query.get("status"), InsightStatus, "status")
    team = _enum_param(request.query.get("team"), InsightTeam, "team")
    async with request.config_dict[SESSIONS]() as db:
        items = await insights.board(db, utcnow(), status=status, team=team)
    name = f"insights-{utcnow().date().isoformat()}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    if fmt == "json":
        body = json.dumps({"insights": items}, ensure_ascii=False, indent=1)
        return web.Response(text=body, content_type="application/json", headers=headers)
    return web.Response(text=board_csv(items), content_type="text/csv", headers=headers)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/insights", list_insights)
    app.router.add_post("/insights", create_insight)
    app.router.add_get("/insights/export", export_board)
    app.router.add_get("/insights/{insight_id:\\d{1,9}}", get_insight)
    app.router.add_patch("/insights/{insight_id:\\d{1,9}}", edit_insight)
    app.router.add_delete("/insights/{insight_id:\\d{1,9}}", delete_insight)
    app.router.add_post("/insights/{insight_id:\\d{1,9}}/status", move_insight)


# ---- OpenAPI ---------------------------------------------------------------------------------


_STATUSES = [s.value for s in InsightStatus]
_TEAMS = [t.value for t in InsightTeam]
_PATH_ID = {
    "name": "insight_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "maximum": 999_999_999},
}
_SIDE = {
    "type": "object",
    "description": "Metrics of the matching feedback in the period (as in /api/metrics) plus "
    "the count and share of negative rows (negative sentiment or a low score).",
}
_INSIGHT = {
    "type": "object",
    "required": ["id", "title", "owner_team", "status", "origin", "criteria", "linked"],
    "properties": {
        "id": {"type": "integer"},
        "title": {"type": "string"},
        "note": {"type": ["string", "null"]},
        "owner_team": {"type": "string", "enum": _TEAMS},
        "status": {"type": "string", "enum": _STATUSES},
        "origin": {"type": "string", "enum": ["theme", "pitfall", "feedback"]},
        "criteria": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "explorer filters (no dates) of the matching feedback",
        },
        "customer_message": {"type": ["string", "null"]},
        "notify_until": {"type": ["string", "null"], "format": "date-time"},
        "created_by": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "applied_at": {"type": ["string", "null"], "format": "date-time"},
        "next_statuses": {"type": "array", "items": {"type": "string", "enum": _STATUSES}},
        "linked": {
            "type": "object",
            "properties": {
                "feedback": {"type": "integer"},
                "customers": {"type": "integer"},
                "reachable_customers": {"type": "integer"},
                "told": {"type": "integer"},
            },
        },
        "volume": {"type": "integer", "description": "matching feedback in the last 12 weeks"},
        "trend": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "start": {"type": "string", "format": "date"},
                    "volume": {"type": "integer"},
                    "negative": {"type": "integer"},
                },
            },
        },
        "comparison": {
            "type": ["object", "null"],
            "description": "applied insights: matching feedback since applied_at (up to `days`, "
            "at least INSIGHT_MIN_WINDOW_DAYS) vs. the period of the same length right before; "
            "too_early until min_days have passed (change and tests then null). tests: "
            "two-proportion z-test (CSAT %, negative share), z-test of the NPS means; verdict "
            "better/worse at p < 0.05 with at least min_answers a side, else no_clear_change, "
            "too_few_answers or too_early",
            "properties": {
                "applied_at": {"type": "string"},
                "before": _SIDE,
                "after": _SIDE,
                "change": {"type": "object"},
                "window_days": {"type": "number"},
                "min_days": {"type": "integer"},
                "min_answers": {"type": "integer"},
                "too_early": {"type": "boolean"},
                "ready_at": {"type": "string", "format": "date-time"},
                "tests": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "before_n": {"type": "integer"},
                            "after_n": {"type": "integer"},
                            "z": {"type": ["number", "null"]},
                            "p_value": {"type": ["number", "null"]},
                            "verdict": {
                                "type": "string",
                                "enum": [
                                    "better",
                                    "worse",
                                    "no_clear_change",
                                    "too_few_answers",
                                    "too_early",
                                ],
                            },
                        },
                    },
                },
            },
        },
    },
}
_CREATE = {
    "type": "object",
    "required": ["title", "owner_team", "origin"],
    "properties": {
        "title": {"type": "string", "maxLength": insights.MAX_TITLE},
        "owner_team": {"type": "string", "enum": _TEAMS},
        "origin": {"type": "string", "enum": ["theme", "pitfall", "feedback"]},
        "note": {"type": ["string", "null"], "maxLength": insights.MAX_NOTE},
        "customer_message": {"type": ["string", "null"], "maxLength": insights.MAX_MESSAGE},
        "theme": {"type": "string", "description": "origin theme: links its negative comments"},
        "pitfall": {
            "type": "object",
            "description": "origin pitfall: links its low scores",
            "properties": {
                "stage": {"type": "string"},
                "channel": {"type": ["string", "null"]},
                "metric": {"type": "string", "enum": list(insights.PITFALL_METRICS)},
            },
        },
        "feedback_ids": {
            "type": "array",
            "items": {"type": "integer"},
            "maxItems": insights.MAX_PICKED,
        },
        "criteria": {"type": "object", "additionalProperties": {"type": "string"}},
        "from": {"type": "string", "format": "date"},
        "to": {"type": "string", "format": "date"},
        "tz": {"type": "string"},
    },
}
_EDIT = {
    "type": "object",
    "properties": {
        k: v
        for k, v in _CREATE["properties"].items()  # type: ignore[attr-defined]
        if k in insights.EDITABLE
    },
}
_MOVE = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "string", "enum": _STATUSES},
        "applied_at": {
            "type": "string",
            "description": "with applied: when it went live "
            "(date or date-time, not in the future; default now)",
        },
        "notify": {
            "type": "boolean",
            "description": "with applied: tell each linked customer "
            "the customer_message once, in their next chat (for 90 days)",
        },
    },
}
_ONE = ok_response("the insight", {"$ref": "#/components/schemas/Insight"})

OPENAPI_SCHEMAS: dict[str, Any] = {"Insight": _INSIGHT}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/insights": {
        "get": {
            "summary": "The insight board (every staff role)",
            "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string", "enum": _STATUSES}},
                {"name": "team", "in": "query", "schema": {"type": "string", "enum": _TEAMS}},
            ],
            "responses": {
                "200": ok_response(
                    "insights",
                    {
                        "type": "object",
                        "properties": {
                            "insights": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Insight"},
                            }
                        },
                    },
                ),
                **error_responses(401, 403, 422),
            },
        },
        "post": {
            "summary": "Create an insight from a theme, a pitfall or picked feedback "
            "(cx_manager, admin)",
            "requestBody": {"required": True, **json_content(_CREATE)},
            "responses": {"201": _ONE, **error_responses(400, 401, 403, 422)},
        },
    },
    "/api/insights/export": {
        "get": {
            "summary": "Export the board as CSV or JSON (cx_manager, admin)",
            "parameters": [
                {
                    "name": "format",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["csv", "json"]},
                },
                {"name": "status", "in": "query", "schema": {"type": "string", "enum": _STATUSES}},
                {"name": "team", "in": "query", "schema": {"type": "string", "enum": _TEAMS}},
            ],
            "responses": {
                "200": {
                    "description": "the board",
                    "content": {"text/csv": {}, "application/json": {}},
                },
                **error_responses(401, 403, 422),
            },
        }
    },
    "/api/insights/{insight_id}": {
        "get": {
            "summary": "One insight with its linked feedback and before/after (every staff role)",
            "parameters": [
                _PATH_ID,
                {
                    "name": "days",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 365},
                },
            ],
            "responses": {"200": _ONE, **error_responses(401, 403, 404, 422)},
        },
        "patch": {
            "summary": "Edit title, note, team, customer message or criteria (cx_manager, admin)",
            "parameters": [_PATH_ID],
            "requestBody": {"required": True, **json_content(_EDIT)},
            "responses": {"200": _ONE, **error_responses(400, 401, 403, 404, 409, 422)},
        },
        "delete": {
            "summary": "Delete a new or won't-do insight (cx_manager, admin)",
            "parameters": [_PATH_ID],
            "responses": {
                "200": ok_response("deleted", {"type": "object"}),
                **error_responses(401, 403, 404, 409),
            },
        },
    },
    "/api/insights/{insight_id}/status": {
        "post": {
            "summary": "Move along new -> accepted -> in_progress -> applied, or wont_do "
            "(cx_manager, admin)",
            "parameters": [_PATH_ID],
            "requestBody": {"required": True, **json_content(_MOVE)},
            "responses": {"200": _ONE, **error_responses(400, 401, 403, 404, 409, 422)},
        }
    },
}
