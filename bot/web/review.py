"""The console's review inbox (issue #24): the bot's flagged turns for admins and bot
trainers. Page /console/review (static shell, bot/web/static/console/review.*), JSON under
/console/api/review; the rules are bot/domain/turn_review.py, the storage
bot/domain/review_inbox.py."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from bot.config import PROJECT_ROOT
from bot.domain import audit, review_inbox, review_regression
from bot.domain.enums import StaffRole
from bot.domain.errors import InvalidInput
from bot.domain.turn_review import Reason
from bot.storage.models import StaffUser
from bot.web import pages
from bot.web.auth import current_staff, require_roles
from bot.web.errors import read_json_object
from bot.web.keys import SESSIONS

REVIEWERS = (StaffRole.admin, StaffRole.bot_trainer)
STATES = ("open", "reviewed", "all")


@require_roles(*REVIEWERS)
async def review_page(_request: web.Request) -> web.Response:
    return pages.response(pages.CONSOLE, "review.html")


def _day(value: str | None, name: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a date (YYYY-MM-DD)") from exc
    return dt.datetime.combine(day, dt.time(), dt.timezone.utc)


def inbox_filter(query: dict[str, str]) -> review_inbox.InboxFilter:
    reason = query.get("reason") or None
    if reason is not None and reason not in Reason._value2member_map_:
        raise InvalidInput(f"unknown reason {reason!r}")
    intent = query.get("intent") or None
    if intent is not None and intent not in (*review_inbox.INTENTS, "nlu_fallback"):
        raise InvalidInput(f"unknown intent {intent!r}")
    state = query.get("state") or "open"
    if state not in STATES:
        raise InvalidInput("state must be open, reviewed or all")
    until = _day(query.get("to"), "to")
    try:
        offset = max(0, int(query.get("offset") or 0))
    except ValueError as exc:
        raise InvalidInput("offset must be a number") from exc
    return review_inbox.InboxFilter(
        reason=Reason(reason) if reason else None,
        intent=intent,
        since=_day(query.get("from"), "from"),
        until=until + dt.timedelta(days=1) if until else None,  # "to" is inclusive
        state=state,
        limit=25,
        offset=offset,
    )


@require_roles(*REVIEWERS)
async def api_review_list(request: web.Request) -> web.Response:
    inbox = inbox_filter(dict(request.query))
    async with request.config_dict[SESSIONS]() as session:
        page = await review_inbox.flagged_turns(session, inbox)
    return web.json_response(
        {
            **page,
            "offset": inbox.offset,
            "limit": inbox.limit,
            "reasons": [r.value for r in Reason],
            "intents": list(review_inbox.INTENTS),
            "entities": list(review_inbox.ENTITIES),
        }
    )


@require_roles(*REVIEWERS)
async def api_review_turn(request: web.Request) -> web.Response:
    try:
        message_id = int(request.match_info["message_id"])
    except ValueError as exc:
        raise web.HTTPNotFound(reason="Not found.") from exc
    data = await read_json_object(request)
    user: StaffUser = current_staff(request)
    intent = data.get("intent")
    async with request.config_dict[SESSIONS]() as session, session.begin():
        turn = await review_inbox.review(
            session,
            message_id,
            user,
            str(data.get("verdict") or ""),
            intent if isinstance(intent, str) else None,
            data.get("entities"),
        )
    return web.json_response(turn)


@require_roles(*REVIEWERS)
async def api_review_regression(request: web.Request) -> web.Response:
    """The turn's conversation as a regression conversation file to download
    (bot/domain/review_regression.py; the trainer saves it into tests/conversations/)."""
    try:
        message_id = int(request.match_info["message_id"])
    except ValueError as exc:
        raise web.HTTPNotFound(reason="Not found.") from exc
    user: StaffUser = current_staff(request)
    async with request.config_dict[SESSIONS]() as session, session.begin():
        saved = await review_regression.regression_conversation(session, message_id, PROJECT_ROOT)
        session.add(
            audit.by_staff(
                user.id,
                "save_regression_conversation",
                "message",
                message_id,
                {"file": saved.filename},
            )
        )
    return web.Response(
        text=saved.text,
        content_type="application/yaml",
        headers={
            "Content-Disposition": f'attachment; filename="{saved.filename}"',
            "Cache-Control": "no-store",
        },
    )


def add_routes(console: web.Application) -> None:
    console.router.add_get("/review", review_page)
    console.router.add_get("/api/review", api_review_list)
    console.router.add_post("/api/review/{message_id}", api_review_turn)
    console.router.add_get("/api/review/{message_id}/regression.yml", api_review_regression)
