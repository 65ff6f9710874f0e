"""The console's inbox around the hand-over (issue #20): what each agent has read, the
history of resolved conversations, and canned responses.

Unread: a staff member's read marker per conversation (`ConsoleRead`) is the id of the
last message they have seen; the customer's messages after it are unread for them (all
the customer's messages when they never opened the conversation).

The functions flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import audit, staff_access
from bot.domain.enums import EscalationStatus, MessageSender
from bot.domain.errors import Conflict, InvalidInput, NotFound
from bot.domain.views import escalation_json, message_json, staff_names
from bot.storage.models import (
    AuditLog,
    CannedResponse,
    ConsoleRead,
    Conversation,
    Customer,
    Escalation,
    Message,
    Order,
    StaffUser,
    utcnow,
)

HISTORY_LIMIT = 50
MAX_QUERY_CHARS = 100
SHORTCUT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MAX_CANNED_CHARS = 2000
# Placeholders a canned response may contain, filled in for the conversation at hand.
PLACEHOLDERS = ("customer_name", "order_number")


# ---- unread ------------------------------------------------------------------------------


async def unread_counts(
    session: AsyncSession, staff_id: int, conversation_ids: Iterable[str]
) -> dict[str, int]:
    """Customer messages after the staff member's read marker, per conversation (only
    conversations with at least one are present)."""
    ids = sorted(set(conversation_ids))
    if not ids:
        return {}
    read = (
        select(ConsoleRead.last_read_message_id)
        .where(
            ConsoleRead.staff_user_id == staff_id,
            ConsoleRead.conversation_id == Message.conversation_id,
        )
        .correlate(Message)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(Message.conversation_id, func.count())
        .where(
            Message.conversation_id.in_(ids),
            Message.sender == MessageSender.customer,
            Message.id > func.coalesce(read, 0),
        )
        .group_by(Message.conversation_id)
    )
    return {conversation_id: int(count) for conversation_id, count in rows.tuples()}


async def mark_read(
    session: AsyncSession, staff_id: int, conversation_id: str, up_to: Any = None
) -> int:
    """Move the staff member's read marker to message `up_to` (default: the latest
    message); never backwards. Returns the marker."""
    if await session.get(Conversation, conversation_id) is None:
        raise NotFound("No such conversation.")
    latest = await session.scalar(
        select(func.max(Message.id)).where(Message.conversation_id == conversation_id)
    )
    if up_to is None:
        marker = int(latest or 0)
    elif isinstance(up_to, int) and not isinstance(up_to, bool) and up_to >= 0:
        marker = min(up_to, int(latest or 0))
    else:
        raise InvalidInput("message_id must be a message id.")
    values = {
        "staff_user_id": staff_id,
        "conversation_id": conversation_id,
        "last_read_message_id": marker,
        "read_at": utcnow(),
    }
    # One statement, so two tabs of the same agent cannot collide on the primary key.
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(ConsoleRead).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["staff_user_id", "conversation_id"],
            set_={
                "last_read_message_id": statement.excluded.last_read_message_id,
                "read_at": statement.excluded.read_at,
            },
            where=ConsoleRead.last_read_message_id < statement.excluded.last_read_message_id,
        )
    )
    stored = await session.scalar(
        select(ConsoleRead.last_read_message_id).where(
            ConsoleRead.staff_user_id == staff_id, ConsoleRead.conversation_id == conversation_id
        )
    )
    return int(stored if stored is not None else marker)


# ---- history of resolved conversations ---------------------------------------------------


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _day(value: Any, name: str) -> date | None:
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a date like 2026-12-06.") from exc


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


async def history(
    session: AsyncSession,
    viewer: StaffUser,
    query: str = "",
    date_from: Any = None,
    date_to: Any = None,
    limit: int = HISTORY_LIMIT,
) -> list[dict[str, Any]]:
    """Resolved chats `viewer` may read (bot/domain/staff_access.py: an agent sees their
    work), most recently resolved first. `query` matches (case-insensitive, a substring)
    the customer's name, email or shop id, one of their order numbers, or the text of a
    message in the chat; `date_from`/`date_to` (ISO dates, UTC, inclusive) bound the day
    it was resolved."""
    text = (query or "").strip()
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidInput(f"Search for at most {MAX_QUERY_CHARS} characters.")
    first, last = _day(date_from, "from"), _day(date_to, "to")
    if first and last and first > last:
        raise InvalidInput("The start date is after the end date.")
    statement = (
        select(Escalation, Customer)
        .join(Conversation, Conversation.id == Escalation.conversation_id)
        # The chat's customer (verified during the chat), else the escalation's.
        .outerjoin(
            Customer,
            Customer.id == func.coalesce(Conversation.customer_id, Escalation.customer_id),
        )
        .where(
            Escalation.status == EscalationStatus.resolved,
            staff_access.readable_condition(viewer.role, viewer.id),
        )
    )
    if first:
        statement = statement.where(Escalation.resolved_at >= _start_of(first))
    if last:
        statement = statement.where(Escalation.resolved_at < _start_of(last + timedelta(days=1)))
    if text:
        pattern = _like(text)
        statement = statement.where(
            or_(
                Customer.name.ilike(pattern, escape="\\"),
                Customer.email.ilike(pattern, escape="\\"),
                Customer.external_id.ilike(pattern, escape="\\"),
                exists().where(
                    and_(
                        Order.customer_id == Customer.id,
                        Order.number.ilike(pattern, escape="\\"),
                    )
                ),
                exists().where(
                    and_(
                        Message.conversation_id == Escalation.conversation_id,
                        Message.text.ilike(pattern, escape="\\"),
                    )
                ),
            )
        )
    rows = (
        await session.execute(
            statement.order_by(Escalation.resolved_at.desc(), Escalation.id.desc()).limit(limit)
        )
    ).tuples()
    names = await staff_names(session)
    items = []
    for escalation, customer in rows:
        last_words = await session.scalar(
            select(Message)
            .where(
                Message.conversation_id == escalation.conversation_id,
                Message.sender == MessageSender.customer,
            )
            .order_by(Message.id.desc())
            .limit(1)
        )
        visible = customer is not None and not customer.is_anonymous
        items.append(
            {
                **escalation_json(escalation, names),
                "customer": {
                    "id": customer.id,
                    "name": customer.name,
                    "email": customer.email,
                    "external_id": customer.external_id,
                }
                if visible and customer is not None
                else None,
                "last_message": message_json(last_words) if last_words else None,
            }
        )
    return items


# ---- canned responses --------------------------------------------------------------------


def canned_json(canned: CannedResponse) -> dict[str, Any]:
    return {
        "id": canned.id,
        "shortcut": canned.shortcut,
        "title": canned.title,
        "text": canned.text,
        "updated_at": canned.updated_at.isoformat(),
    }


async def list_canned(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.scalars(select(CannedResponse).order_by(CannedResponse.shortcut))
    return [canned_json(c) for c in rows]


def _canned_fields(data: dict[str, Any]) -> tuple[str, str, str]:
    shortcut, title, text = data.get("shortcut"), data.get("title"), data.get("text")
    if not isinstance(shortcut, str) or not SHORTCUT.match(shortcut.strip().lower()):
        raise InvalidInput(
            "The shortcut must have 1 to 32 lowercase letters, digits, - or _ (like: refund)."
        )
    if not isinstance(title, str) or not title.strip() or len(title.strip()) > 100:
        raise InvalidInput("The title must have 1 to 100 characters.")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_CANNED_CHARS:
        raise InvalidInput(f"The text must have 1 to {MAX_CANNED_CHARS} characters.")
    unknown = sorted(set(re.findall(r"\{([^{}]*)\}", text)) - set(PLACEHOLDERS))
    if unknown:
        raise InvalidInput(
            "Unknown placeholder {"
            + unknown[0]
            + "}: use "
            + " or ".join("{" + p + "}" for p in PLACEHOLDERS)
            + "."
        )
    return shortcut.strip().lower(), title.strip(), text.strip()


def _canned_audit(staff: StaffUser, action: str, canned_id: int, shortcut: str) -> AuditLog:
    return audit.by_staff(staff.id, action, "canned_response", canned_id, {"shortcut": shortcut})


async def save_canned(
    session: AsyncSession, staff: StaffUser, data: dict[str, Any], canned_id: int | None = None
) -> CannedResponse:
    """Create (no `canned_id`) or replace a canned response; Conflict on a taken shortcut
    (when the database finds it, in a race, the caller must roll back)."""
    shortcut, title, text = _canned_fields(data)
    taken = await session.scalar(
        select(CannedResponse.id).where(CannedResponse.shortcut == shortcut)
    )
    if taken is not None and taken != canned_id:
        raise Conflict(f"The shortcut /{shortcut} is taken.", code="shortcut_taken")
    if canned_id is None:
        canned = CannedResponse(shortcut=shortcut, title=title, text=text)
        session.add(canned)
    else:
        found = await session.get(CannedResponse, canned_id)
        if found is None:
            raise NotFound("No such canned response.")
        canned = found
        canned.shortcut, canned.title, canned.text = shortcut, title, text
        canned.updated_at = utcnow()
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"The shortcut /{shortcut} is taken.", code="shortcut_taken") from exc
    action = "create_canned_response" if canned_id is None else "update_canned_response"
    session.add(_canned_audit(staff, action, canned.id, shortcut))
    await session.flush()
    return canned


async def delete_canned(session: AsyncSession, staff: StaffUser, canned_id: int) -> None:
    canned = await session.get(CannedResponse, canned_id)
    if canned is None:
        raise NotFound("No such canned response.")
    session.add(_canned_audit(staff, "delete_canned_response", canned.id, canned.shortcut))
    await session.execute(delete(CannedResponse).where(CannedResponse.id == canned_id))
    await session.flush()


def fill_placeholders(text: str, values: dict[str, str | None]) -> str:
    """A canned text with its placeholders filled; one without a value is left as it is
    (for the agent to fill in before sending)."""

    def replace(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return value if value else match.group(0)

    return re.sub(r"\{(" + "|".join(PLACEHOLDERS) + r")\}", replace, text)
