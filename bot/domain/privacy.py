"""Customers' data rights: export everything we hold about a customer, erase it, and purge
old transcripts (retention).

Erasure keeps what the metrics need (scores, kinds, stages, channels, themes, sentiment,
lifecycles, order totals and items, timestamps) and removes what identifies the person or
what they said: name, email, the shop's customer id (kept only as a one-way hash so the
same request can be repeated), shipping addresses, tracking numbers, every message text of
their conversations (theirs, the bot's and the agents'), feedback comments, escalation
summaries and contact emails, staff notes on their conversations and the details of the
audit rows of their own actions; the records of the single-use identity tokens they used
are deleted. The Rasa trackers of their conversations live in Rasa:
the caller clears them with the returned `conversation_ids` and `clear_trackers`, given its
Rasa client (the domain imports no Rasa or web code).

A customer may come back after an erasure: the shop's next identity token or event creates
a new customer row with the same shop id. Erasing by the shop's id then erases every row
that id ever had (the new one, and the erased ones again, which changes nothing unless data
arrived since). The first erased row of a shop id gets `erased-` + the hash; a later one,
whose hash is taken, `erased-` + the hash + `-` + our id, so the column stays unique.

The functions flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

import base64
import decimal
import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import ColumnElement, String, cast, delete, inspect, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import photos, returns, review_inbox
from bot.domain.enums import ShopEventStatus
from bot.domain.errors import InvalidInput, NotFound
from bot.storage.models import (
    AuditLog,
    Base,
    Conversation,
    Customer,
    Escalation,
    Feedback,
    IdentityTokenUse,
    Lifecycle,
    Message,
    Order,
    Photo,
    ShopEvent,
    StaffNote,
    Subscription,
    SurveyDispatch,
    WebhookOutbox,
    utcnow,
)

EXPORT_FORMAT = "shop-feedback-customer-export/1"
ERASED_TEXT = "[erased]"
ERASED_PREFIX = "erased-"
# Columns never handed out: secrets' hashes and internal keys, not the customer's data.
_NOT_EXPORTED = frozenset({"access_token_hash", "idempotency_key", "token_hash", "storage_key"})


@dataclass(frozen=True)
class Erasure:
    customer_id: int
    already_erased: bool
    # Rasa sender ids whose trackers the caller must clear as well.
    conversation_ids: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    # Their photos' files (keys in PHOTO_DIR): the caller deletes them after the commit
    # (photos.PhotoStore.remove; every one of theirs, so a repeated erasure retries).
    photo_keys: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "already_erased": self.already_erased,
            "conversation_ids": self.conversation_ids,
            "counts": self.counts,
        }


def erased_external_id(external_id: str) -> str:
    """The placeholder that replaces the shop's customer id: `erased-` + 32 hex of SHA-256."""
    return ERASED_PREFIX + hashlib.sha256(external_id.encode("utf-8")).hexdigest()[:32]


def _erased_as(external_id: str) -> ColumnElement[bool]:
    # The rows that had this shop id: the first erased one, then `<placeholder>-<our id>`.
    placeholder = erased_external_id(external_id)
    return or_(Customer.external_id == placeholder, Customer.external_id.like(f"{placeholder}-%"))


async def _customers(session: AsyncSession, ref: int | str) -> list[Customer]:
    """Every customer row named by `ref`, oldest first: by our id (int) one row; by the
    shop's id (str) the current row and every erased row that had that id (an all-digit
    string that matches none is tried as our id)."""
    if isinstance(ref, int):
        customer = await session.get(Customer, ref)
        return [customer] if customer is not None else []
    ref = ref.strip()
    rows = list(
        await session.scalars(
            select(Customer)
            .where(or_(Customer.external_id == ref, _erased_as(ref)))
            .order_by(Customer.id)
        )
    )
    if not rows and ref.isdigit() and len(ref) < 19:
        customer = await session.get(Customer, int(ref))
        rows = [customer] if customer is not None else []
    return rows


def _current(rows: list[Customer]) -> Customer:
    # The row not erased yet if there is one (at most one: the column is unique), else the
    # latest erased one.
    active = [c for c in rows if not c.external_id.startswith(ERASED_PREFIX)]
    return (active or rows)[-1]


async def find_customer(session: AsyncSession, ref: int | str) -> Customer:
    """The customer named by our id (int) or by the shop's id (str; an all-digit string
    that matches no shop id is tried as our id). An erased customer is still found by the
    shop's id they had; when the shop's id had several rows (they came back after an
    erasure), the current one. NotFound otherwise."""
    rows = await _customers(session, ref)
    if not rows:
        raise NotFound(f"There is no customer {ref}.")
    return _current(rows)


# ---- export ------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def row_json(row: Base) -> dict[str, Any]:
    """Every mapped column of a row (so new columns are exported without code changes)."""
    return {
        attr.key: _jsonable(getattr(row, attr.key))
        for attr in inspect(row).mapper.column_attrs
        if attr.key not in _NOT_EXPORTED
    }


async def _rows(session: AsyncSession, model: type[Base], *where: ColumnElement[bool]) -> list[Any]:
    primary_key = inspect(model).primary_key[0]
    result = await session.execute(select(model).where(*where).order_by(primary_key))
    return list(result.scalars())


def _their_conversations(customer_id: int) -> Any:
    return select(Conversation.id).where(Conversation.customer_id == customer_id)


async def export_customer(
    session: AsyncSession, ref: int | str, *, actor: str = "system", photo_dir: Path | None = None
) -> dict[str, Any]:
    """All data held about one customer as a JSON-ready dict; writes an audit row. Their
    photos (issue #19) are in `photos`, each image base64-encoded in `data_base64` when
    `photo_dir` (PHOTO_DIR) is given."""
    customer = await find_customer(session, ref)
    cid = customer.id
    orders = await _rows(session, Order, Order.customer_id == cid)
    conversations = await _rows(session, Conversation, Conversation.customer_id == cid)
    conversation_json = []
    for conversation in conversations:
        messages = await _rows(session, Message, Message.conversation_id == conversation.id)
        notes = await _rows(session, StaffNote, StaffNote.conversation_id == conversation.id)
        conversation_json.append(
            {
                **row_json(conversation),
                "messages": [row_json(m) for m in messages],
                "staff_notes": [
                    {"created_at": _jsonable(n.created_at), "text": n.text} for n in notes
                ],
            }
        )
    theirs = _their_conversations(cid)
    escalations = await _rows(
        session,
        Escalation,
        or_(Escalation.customer_id == cid, Escalation.conversation_id.in_(theirs)),
    )
    document = {
        "format": EXPORT_FORMAT,
        "exported_at": utcnow().isoformat(),
        "customer": row_json(customer),
        "orders": [
            {**row_json(o), "items": [row_json(i) for i in o.items]}
            for o in await _with_items(session, orders)
        ],
        "subscriptions": [
            row_json(s) for s in await _rows(session, Subscription, Subscription.customer_id == cid)
        ],
        # item-level returns (issue #19), as the console shows them
        "returns": await returns.panel(session, cid),
        "lifecycles": [
            row_json(lc) for lc in await _rows(session, Lifecycle, Lifecycle.customer_id == cid)
        ],
        "conversations": conversation_json,
        "feedback": [
            row_json(f) for f in await _rows(session, Feedback, Feedback.customer_id == cid)
        ],
        "survey_dispatches": [
            row_json(d)
            for d in await _rows(session, SurveyDispatch, SurveyDispatch.customer_id == cid)
        ],
        "escalations": [_escalation_json(e) for e in escalations],
        "photos": await _photos_json(session, cid, photo_dir),
        "actions": [
            row_json(a) for a in await _rows(session, AuditLog, AuditLog.actor == f"customer:{cid}")
        ],
    }
    session.add(
        AuditLog(
            actor=actor,
            action="export_customer",
            target_type="customer",
            target_id=str(cid),
            details={},
        )
    )
    await session.flush()
    return document


def _their_photos(customer_id: int) -> ColumnElement[bool]:
    return or_(
        Photo.customer_id == customer_id,
        Photo.conversation_id.in_(_their_conversations(customer_id)),
    )


async def _photos_json(
    session: AsyncSession, customer_id: int, photo_dir: Path | None
) -> list[dict[str, Any]]:
    store = photos.PhotoStore(photo_dir) if photo_dir is not None else None
    exported = []
    for photo in await _rows(session, Photo, _their_photos(customer_id)):
        body = row_json(photo)
        if store is not None and photo.erased_at is None:
            data = store.read(photo.storage_key)
            body["data_base64"] = base64.b64encode(data).decode("ascii") if data else None
        exported.append(body)
    return exported


async def _with_items(session: AsyncSession, orders: list[Order]) -> list[Order]:
    for order in orders:
        await session.refresh(order, ["items"])
    return orders


def _escalation_json(escalation: Escalation) -> dict[str, Any]:
    # Which colleague handled it is staff data, not the customer's.
    body = row_json(escalation)
    body.pop("claimed_by_id", None)
    return body


# ---- erase -------------------------------------------------------------------------------


async def _update(session: AsyncSession, statement: Any) -> int:
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


async def _scrub(session: AsyncSession, customer: Customer) -> dict[str, int]:
    """Blank every personal field that still holds something; counts per kind of data."""
    cid = customer.id
    theirs = _their_conversations(cid)
    counts = {
        "messages": await _update(
            session,
            update(Message)
            .where(Message.conversation_id.in_(theirs), Message.text != ERASED_TEXT)
            .values(text=ERASED_TEXT, buttons=null()),
        ),
        "staff_notes": await _update(
            session,
            update(StaffNote)
            .where(StaffNote.conversation_id.in_(theirs), StaffNote.text != ERASED_TEXT)
            .values(text=ERASED_TEXT),
        ),
        "feedback_texts": await _update(
            session,
            update(Feedback)
            .where(Feedback.customer_id == cid, Feedback.text.is_not(None))
            .values(text=None),
        ),
        "escalations": await _update(
            session,
            update(Escalation)
            .where(
                or_(Escalation.customer_id == cid, Escalation.conversation_id.in_(theirs)),
                or_(Escalation.summary.is_not(None), Escalation.contact_email.is_not(None)),
            )
            .values(summary=None, contact_email=None),
        ),
        "orders": await _update(
            session,
            update(Order)
            .where(
                Order.customer_id == cid,
                or_(Order.shipping_address != ERASED_TEXT, Order.tracking_number.is_not(None)),
            )
            .values(shipping_address=ERASED_TEXT, tracking_number=None),
        ),
        "conversation_tokens": await _update(
            session,
            update(Conversation)
            .where(Conversation.customer_id == cid, Conversation.access_token_hash.is_not(None))
            .values(access_token_hash=None),
        ),
    }
    # Their photos (issue #19): the rows stay (erased_at), the files go (the caller).
    counts["photos"] = await _update(
        session,
        update(Photo)
        .where(_their_photos(cid), Photo.erased_at.is_(None))
        .values(erased_at=utcnow(), sha256=ERASED_TEXT),
    )
    # What the NLU made of their messages (issue #24): entity values are their words.
    counts["turn_understandings"] = await review_inbox.forget(
        session, select(Message.id).where(Message.conversation_id.in_(theirs))
    )
    counts["audit_details"] = await _scrub_audit_details(session, cid)
    counts["webhook_payloads"] = await _scrub_outbox(session, cid)
    return counts


async def _scrub_shop_events(session: AsyncSession, external_id: str) -> int:
    # The stored answer of each shop event names the customer by the shop's id.
    erased = erased_external_id(external_id)
    changed = 0
    candidates = await _rows(
        session, ShopEvent, cast(ShopEvent.result, String).contains(external_id)
    )
    for row in candidates:
        if isinstance(row.result, dict) and row.result.get("customer") == external_id:
            row.result = {**row.result, "customer": erased}
            changed += 1
    # Events still waiting for the worker carry the customer's email, name and address; they
    # are dropped, not applied later (that would bring the personal data back).
    pending = await _rows(
        session,
        ShopEvent,
        ShopEvent.status == ShopEventStatus.pending,
        ShopEvent.customer_ref == external_id,
    )
    for row in pending:
        row.status, row.applied_at = ShopEventStatus.failed, utcnow()
        row.payload, row.customer_ref = None, None
        row.result = {
            "error": {
                "code": "customer_erased",
                "message": "The customer was erased before this event was applied.",
            }
        }
        changed += 1
    return changed


async def _scrub_audit_details(session: AsyncSession, customer_id: int) -> int:
    # Their own actions (e.g. an address change) may carry personal details; the fact that
    # the action happened stays.
    changed = 0
    for row in await _rows(session, AuditLog, AuditLog.actor == f"customer:{customer_id}"):
        if row.details != {"erased": True}:
            row.details = {"erased": True}
            changed += 1
    return changed


async def _scrub_outbox(session: AsyncSession, customer_id: int) -> int:
    # Detractor notifications for the shop (bot/domain/outbox.py) quote the customer, the
    # escalation summary and the comment; one not yet delivered then goes out without them.
    their_escalations = select(Escalation.id).where(Escalation.customer_id == customer_id)
    changed = 0
    for row in await _rows(
        session, WebhookOutbox, WebhookOutbox.escalation_id.in_(their_escalations)
    ):
        payload = _scrubbed_payload(row.payload)
        if payload != row.payload:
            row.payload = payload
            changed += 1
    return changed


def _scrubbed_payload(payload: dict[str, Any]) -> dict[str, Any]:
    scrubbed = dict(payload)
    if isinstance(scrubbed.get("customer"), dict):
        scrubbed["customer"] = {key: None for key in scrubbed["customer"]}
    for part, key in (("escalation", "summary"), ("feedback", "text")):
        if isinstance(scrubbed.get(part), dict):
            scrubbed[part] = {**scrubbed[part], key: None}
    return scrubbed


async def _erased_placeholder(session: AsyncSession, customer: Customer) -> str:
    placeholder = erased_external_id(customer.external_id)
    taken = await session.scalar(
        select(Customer.id).where(Customer.external_id == placeholder, Customer.id != customer.id)
    )
    # Erased before under the same shop id (they came back): our id keeps it unique.
    return placeholder if taken is None else f"{placeholder}-{customer.id}"


async def _erase_one(session: AsyncSession, customer: Customer, actor: str) -> dict[str, int]:
    already_erased = customer.external_id.startswith(ERASED_PREFIX)
    placeholder = None if already_erased else await _erased_placeholder(session, customer)
    counts = await _scrub(session, customer)
    profile_changed = customer.email is not None or customer.name is not None or not already_erased
    customer.email = None
    customer.name = None
    if placeholder is not None:
        counts["shop_events"] = await _scrub_shop_events(session, customer.external_id)
        # Single-use identity tokens she used name her by the shop's id.
        counts["identity_token_uses"] = await _update(
            session,
            delete(IdentityTokenUse).where(
                IdentityTokenUse.customer_external_id == customer.external_id
            ),
        )
        customer.external_id = placeholder
    counts["profile"] = int(profile_changed)
    if any(counts.values()):
        session.add(
            AuditLog(
                actor=actor,
                action="erase_customer",
                target_type="customer",
                target_id=str(customer.id),
                details={"already_erased": already_erased, **counts},
            )
        )
    return counts


async def erase_customer(
    session: AsyncSession, ref: int | str, *, actor: str = "system"
) -> Erasure:
    """Remove a customer's personal data, keep the anonymised metrics; audited; idempotent.

    Running it again changes nothing that is already erased but blanks anything added since
    (e.g. a comment imported later) and returns the conversation ids again, so a caller
    whose Rasa was down the first time can retry clearing the trackers. By the shop's id it
    erases every row that id had (a customer who came back after an erasure: the new row,
    and the earlier ones again); `customer_id` and `already_erased` describe the current
    one (`find_customer`), `counts` and `conversation_ids` cover them all. One audit row per
    customer row that changed.
    """
    rows = await _customers(session, ref)
    if not rows:
        raise NotFound(f"There is no customer {ref}.")
    current = _current(rows)
    already_erased = current.external_id.startswith(ERASED_PREFIX)
    counts: dict[str, int] = {}
    for customer in rows:
        for kind, count in (await _erase_one(session, customer, actor)).items():
            counts[kind] = counts.get(kind, 0) + count
    conversation_ids = list(
        await session.scalars(
            select(Conversation.id)
            .where(Conversation.customer_id.in_([c.id for c in rows]))
            .order_by(Conversation.id)
        )
    )
    photo_keys = list(
        await session.scalars(
            select(Photo.storage_key)
            .where(or_(*(_their_photos(c.id) for c in rows)))
            .order_by(Photo.id)
        )
    )
    await session.flush()
    return Erasure(current.id, already_erased, conversation_ids, counts, photo_keys)


# ---- retention ---------------------------------------------------------------------------


async def purge_transcripts(
    session: AsyncSession,
    retention_days: int,
    *,
    actor: str = "system",
    now: datetime | None = None,
) -> int:
    """Blank the text of every message older than `retention_days`; audited; returns how
    many messages were blanked (0 when there was nothing to do, then no audit row)."""
    if retention_days < 1:
        raise InvalidInput("The retention period must be at least 1 day.")
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    purged = await _update(
        session,
        update(Message)
        .where(Message.created_at < cutoff, Message.text != ERASED_TEXT)
        .values(text=ERASED_TEXT, buttons=null()),
    )
    # The NLU results of those messages go with their text (issue #24).
    await review_inbox.forget(session, select(Message.id).where(Message.created_at < cutoff))
    if purged:
        session.add(
            AuditLog(
                actor=actor,
                action="purge_transcripts",
                target_type="messages",
                target_id="*",
                details={
                    "retention_days": retention_days,
                    "cutoff": cutoff.isoformat(),
                    "messages": purged,
                },
            )
        )
        await session.flush()
    return purged


@dataclass
class TrackerClearing:
    cleared: int = 0
    failed: list[str] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"cleared": self.cleared, "failed": self.failed, "error": self.error}


class TrackerStore(Protocol):
    """What `clear_trackers` needs of the Rasa client (bot/web/rasa_client.py)."""

    async def replace_events(self, sender_id: str, events: list[dict[str, Any]]) -> None: ...


async def clear_trackers(
    rasa: TrackerStore, conversation_ids: Iterable[str], unavailable: type[Exception]
) -> TrackerClearing:
    """Replace each conversation's tracker with no events; after the first failure (the
    client raised `unavailable`) the rest are reported as not cleared (Rasa is down: no
    point waiting for each timeout)."""
    outcome = TrackerClearing()
    for conversation_id in conversation_ids:
        if outcome.error is not None:
            outcome.failed.append(conversation_id)
            continue
        try:
            await rasa.replace_events(conversation_id, [])
            outcome.cleared += 1
        except unavailable as exc:
            outcome.error = f"Rasa did not clear the trackers: {exc}"
            outcome.failed.append(conversation_id)
    return outcome
