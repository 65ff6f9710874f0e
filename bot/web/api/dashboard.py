"""Dashboard API (cx_manager and admin): metrics, journey map, feedback rows, export, transcript.

Every query parameter is validated (422 naming it); unknown or repeated parameters are
refused too, so a typo never silently widens a filter. The export streams batches from a
server-side cursor, so the server's memory stays flat at any size.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

from aiohttp import web
from multidict import MultiMapping
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import (
    feedback_query,
    fix_first,
    journey,
    labels,
    metrics,
    share_of_voice,
    support_ops,
)
from bot.domain.enums import StaffRole
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.feedback_query import MAX_PER_PAGE, FeedbackFilter, FeedbackRow
from bot.storage.models import Conversation, Message, utcnow
from bot.web.api.auth import require_api_roles
from bot.web.api.openapi import error_responses, ok_response, query_param
from bot.web.keys import SESSIONS, SETTINGS

DASHBOARD_ROLES = (StaffRole.cx_manager, StaffRole.admin)
FILTER_PARAMS = frozenset(feedback_query.FILTER_KEYS)
EXPORT_COLUMNS = (
    "id",
    "created_at",
    "stage",
    "channel",
    "source",
    "kind",
    "score",
    "sentiment",
    "themes",
    "text",
    "customer_id",
    "customer_external_id",
    "customer_name",
    "order_number",
    "conversation_id",
    "trigger",
)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EXPORT_BATCH = 2000


def _filter(query: MultiMapping[str], *extra: str) -> FeedbackFilter:
    for name in query:
        if name not in FILTER_PARAMS and name not in extra:
            raise InvalidInput(f"Unknown query parameter '{name}'.")
        if len(query.getall(name)) > 1:
            raise InvalidInput(f"'{name}' may be given only once.")
    return feedback_query.parse_filter(query)


def _choice(query: MultiMapping[str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = query.get(name, default)
    if value not in allowed:
        raise InvalidInput(f"'{name}' must be one of: {', '.join(allowed)}.")
    return value


def _thresholds(request: web.Request) -> journey.PitfallThresholds:
    settings = request.config_dict[SETTINGS]
    return journey.PitfallThresholds(
        csat_below=float(settings.pitfall_csat_below),
        nps_below=float(settings.pitfall_nps_below),
        dropoff_above=float(settings.pitfall_dropoff_above),
        # No pitfall on a sample the same screen calls "too few" (tester 5).
        min_responses=max(settings.pitfall_min_responses, settings.dashboard_min_answers),
    )


def min_answers(request: web.Request) -> int:
    """Fewer CSAT/NPS/CES answers than this: "too few answers" (DASHBOARD_MIN_ANSWERS)."""
    return int(request.config_dict[SETTINGS].dashboard_min_answers)


def local_today(flt: FeedbackFilter) -> date:
    """Today in the filter's time zone: buckets not over by then are partial."""
    return datetime.now(flt.range.tz).date()


@require_api_roles(*DASHBOARD_ROLES)
async def get_metrics(request: web.Request) -> web.Response:
    flt = _filter(request.query, "bucket", "group_by")
    bucket = _choice(request.query, "bucket", (*metrics.BUCKETS, "none"), "week")
    group_by = request.query.get("group_by")
    if group_by is not None and group_by not in metrics.DIMENSIONS:
        raise InvalidInput(f"'group_by' must be one of: {', '.join(metrics.DIMENSIONS)}.")
    sessions = request.config_dict[SESSIONS]

    async def read_overview() -> metrics.Overview:
        async with sessions() as db:
            return await metrics.overview(
                db, flt, None if bucket == "none" else bucket, local_today(flt)
            )

    async def read_breakdown(dimension: str) -> list[metrics.GroupMetrics]:
        async with sessions() as db, sessions() as previous_db:
            return await metrics.breakdown(db, flt, dimension, previous_db)

    least = min_answers(request)
    if group_by is None:
        return web.json_response((await read_overview()).as_json(least))
    # The totals, the breakdown and its previous period on three connections at once: the
    # database answers one while Python turns another's rows into figures (the same queries
    # as one after the other; each statement reads its own snapshot either way).
    overview, groups = await asyncio.gather(read_overview(), read_breakdown(group_by))
    body = overview.as_json(least)
    body["breakdown"] = {"by": group_by, "groups": [g.as_json(least) for g in groups]}
    return web.json_response(body)


@require_api_roles(*DASHBOARD_ROLES)
async def get_share_of_voice(request: web.Request) -> web.Response:
    """Each channel's share of the feedback per bucket (issue #23, share_of_voice.py)."""
    flt = _filter(request.query, "bucket")
    bucket = _choice(request.query, "bucket", metrics.BUCKETS, "week")
    async with request.config_dict[SESSIONS]() as db:
        channels, points = await share_of_voice.share_of_voice(db, flt, bucket)
    return web.json_response(
        {
            "range": flt.range.as_json(),
            "bucket": bucket,
            "channels": channels,
            "points": [p.as_json(channels) for p in points],
        }
    )


@require_api_roles(*DASHBOARD_ROLES)
async def get_journey(request: web.Request) -> web.Response:
    flt = _filter(request.query)
    async with request.config_dict[SESSIONS]() as db:
        found = await journey.journey_map(db, flt, _thresholds(request))
    return web.json_response({"range": flt.range.as_json(), **found.as_json(min_answers(request))})


@require_api_roles(*DASHBOARD_ROLES)
async def get_fix_first(request: web.Request) -> web.Response:
    """What to fix first: the journey's pitfalls and negative themes by impact (fix_first.py)."""
    flt = _filter(request.query)
    thresholds = _thresholds(request)
    rules = fix_first.FixRules(
        as_of=utcnow(), min_answers=min_answers(request), min_journeys=thresholds.min_responses
    )
    async with request.config_dict[SESSIONS]() as db:
        pitfalls = await journey.scored_pitfalls(db, flt, thresholds)
        items = await fix_first.fix_first(db, flt, pitfalls, rules)
    return web.json_response(
        {
            "range": flt.range.as_json(),
            "as_of": rules.as_of.isoformat(),
            "window_days": rules.window_days,
            "min_answers": rules.min_answers,
            "items": [item.as_json() for item in items],
        }
    )


def row_links(row: FeedbackRow) -> dict[str, str]:
    links: dict[str, str] = {}
    if row.customer_id is not None:  # a reviewer who is not a customer has none (issue #23)
        links["customer"] = f"/dashboard/explorer?customer={row.customer_id}"
    if row.source_url:  # the imported review's public page
        links["source"] = row.source_url
    if row.conversation_id:
        links["conversation"] = f"/dashboard/transcript?conversation={row.conversation_id}"
    return links


@require_api_roles(*DASHBOARD_ROLES)
async def get_feedback(request: web.Request) -> web.Response:
    query = request.query
    flt = _filter(query, "page", "per_page", "sort")
    page = feedback_query.parse_int("page", query.get("page"), 1, 1_000_000) or 1
    per_page = feedback_query.parse_int("per_page", query.get("per_page"), 1, MAX_PER_PAGE) or 50
    sort = feedback_query.parse_sort(query.get("sort"))
    async with request.config_dict[SESSIONS]() as db:
        found = await feedback_query.feedback_page(db, flt, page=page, per_page=per_page, sort=sort)
    return web.json_response(
        {
            "range": flt.range.as_json(),
            "page": found.page,
            "per_page": found.per_page,
            "total": found.total,
            "total_exact": found.exact,
            "pages": max(1, -(-found.total // found.per_page)),
            "sort": sort,
            "items": [{**row.as_json(), "links": row_links(row)} for row in found.rows],
        }
    )


# ---- export ----------------------------------------------------------------------------------


def neutralise(cell: str) -> str:
    """Keep a spreadsheet from running a text cell as a formula (OWASP CSV injection)."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def csv_cells(row: FeedbackRow) -> list[str]:
    text_cells = [
        row.stage,
        row.channel,
        row.source,
        row.kind,
        ";".join(row.themes),
        row.text or "",
        row.customer_external_id or "",
        row.customer_name or "",
        row.order_number or "",
        row.conversation_id or "",
        row.trigger or "",
    ]
    (
        stage,
        channel,
        source,
        kind,
        themes,
        text,
        external_id,
        name,
        order,
        conversation,
        trigger,
    ) = [neutralise(c) for c in text_cells]
    # Numbers and timestamps are written by us, never by a customer: left as they are.
    score = "" if row.score is None else str(row.score)
    sentiment = "" if row.sentiment is None else repr(row.sentiment)
    return [
        str(row.id),
        row.created_at.isoformat(),
        stage,
        channel,
        source,
        kind,
        score,
        sentiment,
        themes,
        text,
        str(row.customer_id),
        external_id,
        name,
        order,
        conversation,
        trigger,
    ]


def csv_chunk(rows: list[FeedbackRow], header: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(EXPORT_COLUMNS)
    writer.writerows(csv_cells(row) for row in rows)
    return buffer.getvalue().encode("utf-8")


class CrlfRecords:
    """Turns COPY's record ends (LF) into the csv module's (CRLF), chunk by chunk.

    A LF outside quotes ends a record; inside quotes it is data and stays as it is (the
    csv module writes it unchanged too). Quotes in a field are doubled, so counting them
    tells inside from outside; '"' and LF never occur inside a UTF-8 multi-byte character.
    """

    def __init__(self) -> None:
        self.quoted = False

    def __call__(self, data: bytes) -> bytes:
        parts = data.split(b'"')
        for i in range(1 if self.quoted else 0, len(parts), 2):
            parts[i] = parts[i].replace(b"\n", b"\r\n")
        if len(parts) % 2 == 0:  # an odd number of quotes
            self.quoted = not self.quoted
        return b'"'.join(parts)


async def copy_applies(db: AsyncSession) -> bool:
    """PostgreSQL through asyncpg writes the CSV itself (COPY); other backends use Python."""
    dialect = (await db.connection()).dialect
    return dialect.name == "postgresql" and dialect.driver == "asyncpg"


async def copy_csv(
    db: AsyncSession, flt: FeedbackFilter, write: Callable[[bytes], Awaitable[None]]
) -> None:
    """The CSV export by `COPY (SELECT ...) TO STDOUT`, byte for byte what `csv_chunk` writes.

    PostgreSQL formats and quotes every cell (`feedback_query.copy_select`), so Python only
    fixes the line ends of each chunk and passes it on as it arrives: flat memory. The
    filter values go as asyncpg parameters (quoted by PostgreSQL), never pasted into SQL.
    """
    connection = await db.connection()
    statement = feedback_query.copy_select(flt, FORMULA_STARTS)
    query, args = feedback_query.positional_query(statement, connection.dialect)
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None  # an open connection has its asyncpg connection
    crlf = CrlfRecords()

    async def output(data: bytes) -> None:
        await write(crlf(data))

    await driver.copy_from_query(query, *args, output=output, format="csv", header=True)


def json_chunk(rows: list[FeedbackRow], first: bool) -> bytes:
    parts = [json.dumps(row.as_json(), ensure_ascii=False) for row in rows]
    text = ",\n".join(parts)
    return ((text if first else ",\n" + text) if parts else "").encode("utf-8")


@require_api_roles(*DASHBOARD_ROLES)
async def export(request: web.Request) -> web.StreamResponse:
    flt = _filter(request.query, "format")
    fmt = _choice(request.query, "format", ("csv", "json"), "csv")
    name = f"feedback-{flt.range.start.isoformat()}-{flt.range.end.isoformat()}.{fmt}"
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8"
            if fmt == "csv"
            else "application/json; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    async with request.config_dict[SESSIONS]() as db:
        if fmt == "csv" and await copy_applies(db):
            await copy_csv(db, flt, response.write)
            await response.write_eof()
            return response
        first = True
        await response.write(csv_chunk([], header=True) if fmt == "csv" else b"[\n")
        async for batch in feedback_query.stream_rows(db, flt, EXPORT_BATCH):
            chunk = csv_chunk(batch) if fmt == "csv" else json_chunk(batch, first)
            first = first and not batch
            await response.write(chunk)
    if fmt == "json":
        await response.write(b"\n]\n")
    await response.write_eof()
    return response


# ---- transcript ----------------------------------------------------------------------------


@require_api_roles(*DASHBOARD_ROLES)
async def get_transcript(request: web.Request) -> web.Response:
    conversation_id = request.match_info["conversation_id"]
    async with request.config_dict[SESSIONS]() as db:
        conversation = await db.get(Conversation, conversation_id)
        if conversation is None:
            raise NotFound("No such conversation.")
        messages = (
            await db.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.id)
            )
        ).all()
    return web.json_response(
        {
            "conversation": {
                "id": conversation.id,
                "channel": conversation.channel.value,
                "status": conversation.status.value,
                "customer_id": conversation.customer_id,
                "created_at": conversation.created_at.isoformat(),
            },
            "messages": [
                {
                    "sender": m.sender.value,
                    "author": m.author,
                    "text": m.text,
                    "created_at": m.created_at.isoformat(),
                }
                for m in messages
            ],
        }
    )


@require_api_roles(*DASHBOARD_ROLES)
async def get_support(request: web.Request) -> web.Response:
    """Support operations of the escalations opened in the range (bot/domain/support_ops.py)."""
    for name in request.query:
        if name not in ("from", "to", "tz"):
            raise InvalidInput(f"Unknown query parameter '{name}'.")
        if len(request.query.getall(name)) > 1:
            raise InvalidInput(f"'{name}' may be given only once.")
    date_range = feedback_query.parse_filter(request.query).range
    settings = request.config_dict[SETTINGS]
    rules = support_ops.SlaRules(
        first_reply_minutes=settings.escalation_aging_minutes,
        resolution_hours=settings.support_sla_resolution_hours,
    )
    async with request.config_dict[SESSIONS]() as db:
        found = await support_ops.support_operations(db, date_range, utcnow(), rules)
    return web.json_response(found.as_json(min_answers(request)))


@require_api_roles(*StaffRole)
async def get_labels(request: web.Request) -> web.Response:
    """The human labels of every key the dashboard and the console show
    (bot/domain/labels.py); every staff role reads them, the console's too."""
    return web.json_response(labels.as_json(), headers={"Cache-Control": "private, max-age=300"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/labels", get_labels)
    app.router.add_get("/support", get_support)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/metrics/share-of-voice", get_share_of_voice)
    app.router.add_get("/journey", get_journey)
    app.router.add_get("/journey/fix-first", get_fix_first)
    app.router.add_get("/feedback", get_feedback)
    app.router.add_get("/export", export)
    app.router.add_get("/transcripts/{conversation_id}", get_transcript)


# ---- OpenAPI ---------------------------------------------------------------------------------


def _csv_enum(values: list[str]) -> dict[str, Any]:
    return {"type": "string", "description": "one or more, comma-separated: " + ", ".join(values)}


def _filter_params() -> list[dict[str, Any]]:
    from bot.domain.enums import AcquisitionSource, Channel, FeedbackKind, FeedbackSource, Stage

    date = {"type": "string", "format": "date"}
    return [
        query_param("from", "First day (included); default: 89 days before `to`.", date),
        query_param("to", "Last day (included); default: today in `tz`.", date),
        query_param("tz", "IANA time zone of the days (default UTC).", {"type": "string"}),
        query_param("stage", "Lifecycle stages.", _csv_enum([s.value for s in Stage])),
        query_param("channel", "Channels.", _csv_enum([c.value for c in Channel])),
        query_param("kind", "Feedback kinds.", _csv_enum([k.value for k in FeedbackKind])),
        query_param("source", "Feedback sources.", _csv_enum([s.value for s in FeedbackSource])),
        query_param("score_min", "Lowest score.", {"type": "integer", "minimum": 0, "maximum": 10}),
        query_param(
            "score_max", "Highest score.", {"type": "integer", "minimum": 0, "maximum": 10}
        ),
        query_param(
            "sentiment",
            "negative: compound < -0.05; positive: > 0.05; neutral: between.",
            {"type": "string", "enum": list(feedback_query.SENTIMENTS)},
        ),
        query_param(
            "theme",
            "Theme of the comment.",
            {"type": "string", "enum": list(feedback_query.THEMES)},
        ),
        query_param(
            "product", "Product SKU of the order the feedback is about.", {"type": "string"}
        ),
        query_param(
            "acquisition",
            "Acquisition source of the journey.",
            {"type": "string", "enum": [s.value for s in AcquisitionSource] + ["unknown"]},
        ),
        query_param("trigger", "Survey trigger, or 'unsolicited'.", {"type": "string"}),
        query_param("customer", "Customer id.", {"type": "integer", "minimum": 1}),
        query_param(
            "q",
            "Free text (case-insensitive substring of the comment).",
            {"type": "string", "maxLength": 200},
        ),
    ]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_NUMBER_OR_NULL = {"type": ["number", "null"]}
_EFFECT = {
    "type": "object",
    "description": "the affected journeys (group) against the rest: the metric, its n and the shortfall (0..1)",
    "properties": {
        "group": _NUMBER_OR_NULL,
        "group_n": {"type": "integer"},
        "rest": _NUMBER_OR_NULL,
        "rest_n": {"type": "integer"},
        "shortfall": {"type": "number"},
    },
}
_INTERVAL_WILSON = {
    "type": ["array", "null"],
    "items": {"type": "number"},
    "minItems": 2,
    "maxItems": 2,
    "description": "95 % Wilson score interval [low, high] in percent; null without answers",
}
_INTERVAL_NPS = {
    "type": ["array", "null"],
    "items": {"type": "number"},
    "minItems": 2,
    "maxItems": 2,
    "description": "95 % interval [low, high]: normal approximation over the +1/0/-1 answer scores; null without answers",
}
_TOO_FEW = {
    "type": "boolean",
    "description": "fewer answers than DASHBOARD_MIN_ANSWERS (min_answers): not to be read as a figure",
}
_RANGE = {
    "type": "object",
    "properties": {
        "from": {"type": "string", "format": "date"},
        "to": {"type": "string", "format": "date"},
        "tz": {"type": "string"},
    },
}
_METRICS = {
    "type": "object",
    "description": "CSAT % (4-5 of 5), NPS (promoters - detractors, passives in the base), CES mean, response rate (answered/sent dispatches; null where it does not apply), volume, mean sentiment.",
    "required": ["volume", "csat", "nps", "ces", "response_rate", "sentiment"],
    "properties": {
        "volume": {"type": "integer"},
        "csat": {
            "type": "object",
            "properties": {
                "percent": _NUMBER_OR_NULL,
                "responses": {"type": "integer"},
                "satisfied": {"type": "integer"},
                "interval": _INTERVAL_WILSON,
                "too_few": _TOO_FEW,
            },
        },
        "nps": {
            "type": "object",
            "properties": {
                "score": _NUMBER_OR_NULL,
                "responses": {"type": "integer"},
                "promoters": {"type": "integer"},
                "passives": {"type": "integer"},
                "detractors": {"type": "integer"},
                "interval": _INTERVAL_NPS,
                "too_few": _TOO_FEW,
            },
        },
        "ces": {
            "type": "object",
            "properties": {
                "mean": _NUMBER_OR_NULL,
                "responses": {"type": "integer"},
                "too_few": _TOO_FEW,
            },
        },
        "response_rate": {
            "type": "object",
            "properties": {
                "percent": _NUMBER_OR_NULL,
                "sent": {"type": ["integer", "null"]},
                "answered": {"type": ["integer", "null"]},
            },
        },
        "sentiment": {
            "type": "object",
            "properties": {"mean": _NUMBER_OR_NULL, "count": {"type": "integer"}},
        },
    },
}
_PITFALL = {
    "type": "object",
    "properties": {
        "stage": {"type": "string"},
        "channel": {"type": ["string", "null"]},
        "metric": {"type": "string", "enum": ["csat", "nps", "dropoff"]},
        "value": {"type": "number"},
        "threshold": {"type": "number"},
        "filter": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "query parameters of GET /api/feedback showing the feedback behind it",
        },
    },
}
_FEEDBACK_ROW = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "stage": {"type": "string"},
        "channel": {"type": "string"},
        "source": {"type": "string"},
        "kind": {"type": "string"},
        "score": {"type": ["integer", "null"]},
        "sentiment": _NUMBER_OR_NULL,
        "themes": {"type": "array", "items": {"type": "string"}},
        "text": {"type": ["string", "null"]},
        "customer": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "external_id": {"type": "string"},
                "name": {"type": ["string", "null"]},
            },
        },
        "conversation_id": {"type": ["string", "null"]},
        "order_number": {"type": ["string", "null"]},
        "trigger": {"type": ["string", "null"]},
        "links": {
            "type": "object",
            "properties": {
                "customer": {"type": "string"},
                "conversation": {"type": "string"},
                "source": {"type": "string"},
            },
        },
    },
}

OPENAPI_SCHEMAS: dict[str, Any] = {
    "Metrics": _METRICS,
    "Pitfall": _PITFALL,
    "FeedbackRow": _FEEDBACK_ROW,
}

_GROUP = {
    "allOf": [
        _ref("Metrics"),
        {
            "type": "object",
            "properties": {
                "key": {"type": "string"},
                "label": {"type": "string"},
                "previous": _ref("Metrics"),
            },
        },
    ]
}
_TREND_POINT = {
    "allOf": [
        _ref("Metrics"),
        {
            "type": "object",
            "properties": {
                "start": {"type": "string", "format": "date"},
                "partial": {
                    "type": ["string", "null"],
                    "enum": [*metrics.PARTIAL_REASONS, None],
                    "description": "why the bucket is not a whole one: not over yet (today in `tz`), or cut by the range; null: whole",
                },
            },
        },
    ]
}

_OPS = {
    "type": "object",
    "properties": {
        "escalations": {"type": "integer"},
        "first_reply": {
            "type": "object",
            "description": "first agent message after the escalation opened",
            "properties": {
                "chats": {"type": "integer"},
                "replied": {"type": "integer"},
                "mean_minutes": _NUMBER_OR_NULL,
                "within_sla": {"type": "integer"},
                "within_sla_percent": _NUMBER_OR_NULL,
                "within_sla_interval": _INTERVAL_WILSON,
            },
        },
        "resolution": {
            "type": "object",
            "properties": {
                "resolved": {"type": "integer"},
                "mean_hours": _NUMBER_OR_NULL,
                "within_sla": {"type": "integer"},
                "within_sla_percent": _NUMBER_OR_NULL,
                "within_sla_interval": _INTERVAL_WILSON,
            },
        },
        "sla_breaches": {
            "type": "object",
            "description": "late, or not done and past the SLA now",
            "properties": {"first_reply": {"type": "integer"}, "resolution": {"type": "integer"}},
        },
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/support": {
        "get": {
            "summary": "Support operations of the escalations opened in the range: first agent reply, resolution time, SLA breaches, by reason, priority and agent with the agents' support CSAT/CES (cx_manager, admin)",
            "parameters": [p for p in _filter_params() if p["name"] in ("from", "to", "tz")],
            "responses": {
                "200": ok_response(
                    "support operations",
                    {
                        "type": "object",
                        "properties": {
                            "range": _RANGE,
                            "sla": {
                                "type": "object",
                                "properties": {
                                    "first_reply_minutes": {
                                        "type": "integer",
                                        "description": "ESCALATION_AGING_MINUTES",
                                    },
                                    "resolution_hours": {
                                        "type": "integer",
                                        "description": "SUPPORT_SLA_RESOLUTION_HOURS",
                                    },
                                },
                            },
                            "min_answers": {"type": "integer"},
                            "total": _OPS,
                            "by_reason": {
                                "type": "array",
                                "items": {
                                    "allOf": [
                                        _OPS,
                                        {
                                            "type": "object",
                                            "properties": {"reason": {"type": "string"}},
                                        },
                                    ]
                                },
                            },
                            "by_priority": {
                                "type": "array",
                                "items": {
                                    "allOf": [
                                        _OPS,
                                        {
                                            "type": "object",
                                            "properties": {"priority": {"type": "integer"}},
                                        },
                                    ]
                                },
                            },
                            "agents": {
                                "type": "array",
                                "items": {
                                    "allOf": [
                                        _OPS,
                                        {
                                            "type": "object",
                                            "properties": {
                                                "agent_id": {"type": "integer"},
                                                "name": {"type": "string"},
                                                "csat": {"type": "object"},
                                                "ces": {"type": "object"},
                                            },
                                        },
                                    ]
                                },
                            },
                        },
                    },
                ),
                **error_responses(401, 403, 422),
            },
        }
    },
    "/api/labels": {
        "get": {
            "summary": "Human labels of the keys the dashboard and the console show: stages, channels, kinds, sources, acquisition sources, themes, survey triggers, escalation reasons, staff roles, senders (every staff role)",
            "responses": {
                "200": ok_response(
                    "labels",
                    {
                        "type": "object",
                        "properties": {
                            "groups": {
                                "type": "object",
                                "additionalProperties": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                            },
                            "values": {
                                "type": "object",
                                "description": "every value of stage, channel, kind and theme, in order",
                                "additionalProperties": {
                                    "type": "array",
                                    "items": {"type": "string"},
                                },
                            },
                            "in_chat_prefix": {"type": "string"},
                            "in_chat": {
                                "type": "string",
                                "description": "label of an in-chat trigger; {flow}: the flow's label",
                            },
                        },
                    },
                ),
                **error_responses(401, 403),
            },
        }
    },
    "/api/metrics": {
        "get": {
            "summary": "Metrics for a date range with the previous period, a trend and an optional breakdown (cx_manager, admin)",
            "parameters": [
                *_filter_params(),
                query_param(
                    "bucket",
                    "Trend bucket (weeks start on Monday); none: no trend.",
                    {"type": "string", "enum": [*metrics.BUCKETS, "none"], "default": "week"},
                ),
                query_param(
                    "group_by",
                    "Breakdown dimension.",
                    {"type": "string", "enum": list(metrics.DIMENSIONS)},
                ),
            ],
            "responses": {
                "200": ok_response(
                    "metrics",
                    {
                        "type": "object",
                        "properties": {
                            "range": _RANGE,
                            "previous_range": _RANGE,
                            "current": _ref("Metrics"),
                            "previous": _ref("Metrics"),
                            "bucket": {"type": ["string", "null"]},
                            "trend": {"type": "array", "items": _TREND_POINT},
                            "min_answers": {
                                "type": "integer",
                                "description": "DASHBOARD_MIN_ANSWERS: fewer answers are 'too few'",
                            },
                            "breakdown": {
                                "type": "object",
                                "properties": {
                                    "by": {"type": "string"},
                                    "groups": {"type": "array", "items": _GROUP},
                                },
                            },
                        },
                    },
                ),
                **error_responses(401, 403, 422),
            },
        }
    },
    "/api/metrics/share-of-voice": {
        "get": {
            "summary": "Each channel's share of the feedback per time bucket, web channels included (cx_manager, admin)",
            "parameters": [
                *_filter_params(),
                query_param(
                    "bucket",
                    "Time bucket (weeks start on Monday).",
                    {"type": "string", "enum": list(metrics.BUCKETS), "default": "week"},
                ),
            ],
            "responses": {
                "200": ok_response(
                    "share of voice",
                    {
                        "type": "object",
                        "properties": {
                            "range": _RANGE,
                            "bucket": {"type": "string"},
                            "channels": {
                                "type": "array",
                                "items": {"type": "string"},
                                "description": "by total volume in the range",
                            },
                            "points": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "start": {"type": "string", "format": "date"},
                                        "total": {"type": "integer"},
                                        "channels": {
                                            "type": "object",
                                            "additionalProperties": {
                                                "type": "object",
                                                "properties": {
                                                    "volume": {"type": "integer"},
                                                    "share_percent": {"type": ["number", "null"]},
                                                },
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                ),
                **error_responses(401, 403, 422),
            },
        }
    },
    "/api/journey": {
        "get": {
            "summary": "Journey map: stages with reach, moving on, scores, channels, negative themes and pitfalls (cx_manager, admin)",
            "parameters": _filter_params(),
            "responses": {
                "200": ok_response(
                    "journey map",
                    {
                        "type": "object",
                        "properties": {
                            "range": _RANGE,
                            "stages": {
                                "type": "array",
                                "items": {
                                    "allOf": [
                                        _ref("Metrics"),
                                        {
                                            "type": "object",
                                            "properties": {
                                                "stage": {"type": "string"},
                                                "customers": {"type": "integer"},
                                                "moved_on_percent": _NUMBER_OR_NULL,
                                                "dropoff_percent": _NUMBER_OR_NULL,
                                                "channels": {
                                                    "type": "array",
                                                    "items": {
                                                        "allOf": [
                                                            _ref("Metrics"),
                                                            {
                                                                "type": "object",
                                                                "properties": {
                                                                    "channel": {"type": "string"},
                                                                    "pitfalls": {
                                                                        "type": "array",
                                                                        "items": _ref("Pitfall"),
                                                                    },
                                                                },
                                                            },
                                                        ]
                                                    },
                                                },
                                                "negative_themes": {
                                                    "type": "array",
                                                    "items": {
                                                        "type": "object",
                                                        "properties": {
                                                            "theme": {"type": "string"},
                                                            "count": {"type": "integer"},
                                                        },
                                                    },
                                                },
                                                "pitfalls": {
                                                    "type": "array",
                                                    "items": _ref("Pitfall"),
                                                },
                                            },
                                        },
                                    ]
                                },
                            },
                            "sources": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "source": {"type": "string"},
                                        "customers": {"type": "integer"},
                                        "share_percent": _NUMBER_OR_NULL,
                                    },
                                },
                            },
                            "pitfalls": {"type": "array", "items": _ref("Pitfall")},
                            "thresholds": {
                                "type": "object",
                                "properties": {
                                    "csat_below": {"type": "number"},
                                    "nps_below": {"type": "number"},
                                    "dropoff_above": {"type": "number"},
                                    "min_responses": {"type": "integer"},
                                },
                            },
                            "min_answers": {
                                "type": "integer",
                                "description": "DASHBOARD_MIN_ANSWERS: fewer answers are 'too few'",
                            },
                        },
                    },
                ),
                **error_responses(401, 403, 422),
            },
        }
    },
    "/api/journey/fix-first": {
        "get": {
            "summary": "What to fix first: the journey map's CSAT/NPS pitfalls and negative themes by stage, ranked by impact = affected journeys x (CSAT shortfall + NPS shortfall + return-rate shortfall) against the other journeys (docs/dashboard.md; cx_manager, admin)",
            "parameters": _filter_params(),
            "responses": {
                "200": ok_response(
                    "fix-first list",
                    {
                        "type": "object",
                        "properties": {
                            "range": _RANGE,
                            "as_of": {"type": "string", "format": "date-time"},
                            "window_days": {"type": "integer"},
                            "min_answers": {"type": "integer"},
                            "items": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "key": {"type": "string"},
                                        "kind": {"type": "string", "enum": ["pitfall", "theme"]},
                                        "stage": {"type": "string"},
                                        "channel": {"type": ["string", "null"]},
                                        "theme": {"type": ["string", "null"]},
                                        "metrics": {"type": "array", "items": {"type": "string"}},
                                        "journeys": {"type": "integer"},
                                        "csat": _EFFECT,
                                        "nps": _EFFECT,
                                        "return_rate": _EFFECT,
                                        "impact": {"type": "number"},
                                        "filter": {"type": "object"},
                                        "insight": {"type": "object"},
                                    },
                                },
                            },
                        },
                    },
                ),
                **error_responses(401, 403, 422),
            },
        }
    },
    "/api/feedback": {
        "get": {
            "summary": "Filtered feedback rows, paged, with links to the customer and the transcript (cx_manager, admin)",
            "parameters": [
                *_filter_params(),
                query_param(
                    "page", "Page number.", {"type": "integer", "minimum": 1, "default": 1}
                ),
                query_param(
                    "per_page",
                    "Rows per page.",
                    {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": 50},
                ),
                query_param(
                    "sort",
                    "Sort key; '-' sorts descending.",
                    {
                        "type": "string",
                        "enum": list(feedback_query.SORT_KEYS),
                        "default": "-created_at",
                    },
                ),
            ],
            "responses": {
                "200": ok_response(
                    "feedback rows",
                    {
                        "type": "object",
                        "properties": {
                            "range": _RANGE,
                            "page": {"type": "integer"},
                            "per_page": {"type": "integer"},
                            "total": {"type": "integer"},
                            "pages": {"type": "integer"},
                            "sort": {"type": "string"},
                            "total_exact": {
                                "type": "boolean",
                                "description": "false: at least `total` rows (counting stops at 10 000 when the daily rollup cannot count)",
                            },
                            "items": {"type": "array", "items": _ref("FeedbackRow")},
                        },
                    },
                ),
                **error_responses(401, 403, 422),
            },
        }
    },
    "/api/export": {
        "get": {
            "summary": "Every filtered feedback row as CSV or a JSON array, streamed (cx_manager, admin)",
            "description": "CSV: RFC 4180, UTF-8, header row; text cells starting with = + - @ tab or CR get a leading apostrophe (formula injection).",
            "parameters": [
                *_filter_params(),
                query_param(
                    "format",
                    "csv or json.",
                    {"type": "string", "enum": ["csv", "json"], "default": "csv"},
                ),
            ],
            "responses": {
                "200": {
                    "description": "the rows",
                    "content": {
                        "text/csv": {"schema": {"type": "string"}},
                        "application/json": {
                            "schema": {"type": "array", "items": _ref("FeedbackRow")}
                        },
                    },
                },
                **error_responses(401, 403, 422),
            },
        }
    },
    "/api/transcripts/{conversation_id}": {
        "get": {
            "summary": "A conversation's transcript (cx_manager, admin)",
            "parameters": [
                {
                    "name": "conversation_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ],
            "responses": {
                "200": ok_response(
                    "transcript",
                    {
                        "type": "object",
                        "properties": {
                            "conversation": {"type": "object"},
                            "messages": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "sender": {"type": "string"},
                                        "author": {"type": ["string", "null"]},
                                        "text": {"type": "string"},
                                        "created_at": {"type": "string", "format": "date-time"},
                                    },
                                },
                            },
                        },
                    },
                ),
                **error_responses(401, 403, 404),
            },
        }
    },
}
