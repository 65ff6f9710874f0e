"""Feedback from other channels (call center notes, emails, social posts, storefront reviews):
one item through the API or many from a CSV file, tied to the lifecycle current at that time.

* Customer by the shop's external id, else by email; unknown customers are refused (422).
* Lifecycle: the customer's newest lifecycle opened at or before `occurred_at` and not
  closed before it; if none, their current one (SPEC §3). The stage recorded is that
  lifecycle's stage now (stage history is not kept).
* A score (csat/ces/nps) with a text gives two rows: the score and a `comment`.
* Idempotent: the key is `intake:<channel>:<external_id>` when the item has an id, else a
  SHA-256 of its content, so re-sending or re-importing never records twice.
* A detractor (closed_loop.is_detractor) opens a follow-up escalation with a due time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import analysis, closed_loop
from bot.domain import feedback as feedback_domain
from bot.domain import lifecycle as lifecycles
from bot.domain.enums import Channel, FeedbackKind, FeedbackSource
from bot.domain.errors import DomainError, InvalidInput
from bot.domain.shop_events import parse_time
from bot.storage.models import Customer, Escalation, Feedback, Lifecycle, utcnow

INTAKE_CHANNELS = (Channel.call_center, Channel.email, Channel.social, Channel.storefront)
INTAKE_KINDS = (
    FeedbackKind.csat,
    FeedbackKind.ces,
    FeedbackKind.nps,
    FeedbackKind.comment,
    FeedbackKind.complaint,
    FeedbackKind.praise,
)
CSV_COLUMNS = (
    "channel",
    "customer_external_id",
    "customer_email",
    "occurred_at",
    "kind",
    "score",
    "text",
    "external_id",
)
MAX_CSV_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class FeedbackItem:
    channel: Channel
    occurred_at: datetime
    kind: FeedbackKind
    customer_external_id: str | None = None
    customer_email: str | None = None
    score: int | None = None
    text: str | None = None
    external_id: str | None = None

    @property
    def key(self) -> str:
        if self.external_id:
            return f"intake:{self.channel.value}:{self.external_id}"
        content = json.dumps(
            [
                self.channel.value,
                self.customer_external_id,
                (self.customer_email or "").lower(),
                self.occurred_at.isoformat(),
                self.kind.value,
                self.score,
                self.text,
            ],
        )
        return f"intake:sha256:{hashlib.sha256(content.encode()).hexdigest()}"


@dataclass
class IntakeResult:
    feedback: list[Feedback]
    created: bool
    escalation: Escalation | None = None


def _bad(path: str, problem: str) -> InvalidInput:
    return InvalidInput(f"'{path}' {problem}", code="invalid_feedback")


def _optional_text(value: Any, path: str, max_len: int) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _bad(path, "must be a string")
    value = value.strip()
    if len(value) > max_len:
        raise _bad(path, f"must be at most {max_len} characters")
    return value or None


def _choice(value: Any, path: str, options: Iterable[Any]) -> Any:
    by_value = {option.value: option for option in options}
    if value not in by_value:
        raise _bad(path, f"must be one of {', '.join(by_value)}")
    return by_value[value]


def _score(value: Any, path: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(path, "must be an integer")
    return value


def parse_item(
    fields: dict[str, Any],
    customer_path: tuple[str, str] = ("customer_external_id", "customer_email"),
) -> FeedbackItem:
    """Validate one item (flat CSV-style fields); errors name the field."""
    channel = _choice(fields.get("channel"), "channel", INTAKE_CHANNELS)
    external_path, email_path = customer_path
    customer_id = _optional_text(fields.get("customer_external_id"), external_path, 64)
    email = _optional_text(fields.get("customer_email"), email_path, 254)
    if customer_id is None and email is None:
        raise _bad(external_path, f"or '{email_path}' is required")
    if fields.get("occurred_at") in (None, ""):
        raise _bad("occurred_at", "is required")
    occurred_at = parse_time(fields["occurred_at"], "occurred_at")
    if occurred_at > utcnow():
        raise _bad("occurred_at", "lies in the future")
    score = _score(fields.get("score"), "score")
    text = _optional_text(fields.get("text"), "text", feedback_domain.MAX_FEEDBACK_CHARS)
    raw_kind = fields.get("kind") or None
    if raw_kind is None:
        if score is not None:
            raise _bad("kind", "is required with a score (csat, ces or nps)")
        raw_kind = FeedbackKind.comment.value
    kind = _choice(raw_kind, "kind", INTAKE_KINDS)
    if kind in closed_loop.SCORE_KINDS and score is None:
        raise _bad("score", f"is required for {kind.value}")
    if kind not in closed_loop.SCORE_KINDS and score is not None:
        raise _bad("score", f"is not allowed for {kind.value}")
    if kind not in closed_loop.SCORE_KINDS and text is None:
        raise _bad("text", f"is required for {kind.value}")
    return FeedbackItem(
        channel=channel,
        occurred_at=occurred_at,
        kind=kind,
        customer_external_id=customer_id,
        customer_email=email,
        score=score,
        text=text,
        external_id=_optional_text(fields.get("external_id"), "external_id", 100),
    )


async def find_customer(session: AsyncSession, item: FeedbackItem) -> Customer:
    if item.customer_external_id is not None:
        customer = await session.scalar(
            select(Customer).where(Customer.external_id == item.customer_external_id)
        )
        if customer is None:
            raise InvalidInput(
                f"No customer with external id '{item.customer_external_id}' is known.",
                code="unknown_customer",
            )
        return customer
    assert item.customer_email is not None
    by_email: Customer | None = await session.scalar(
        select(Customer)
        .where(
            func.lower(Customer.email) == item.customer_email.lower(),
            Customer.is_anonymous.is_(False),
        )
        .order_by(Customer.id)
        .limit(1)
    )
    if by_email is None:
        raise InvalidInput(
            f"No customer with email '{item.customer_email}' is known.", code="unknown_customer"
        )
    return by_email


async def lifecycle_at(session: AsyncSession, customer: Customer, at: datetime) -> Lifecycle:
    """The lifecycle that was current at `at`, else the customer's current one."""
    lifecycle = await session.scalar(
        select(Lifecycle)
        .where(
            Lifecycle.customer_id == customer.id,
            Lifecycle.opened_at <= at,
            or_(Lifecycle.closed_at.is_(None), Lifecycle.closed_at >= at),
        )
        .order_by(Lifecycle.opened_at.desc(), Lifecycle.id.desc())
        .limit(1)
    )
    return lifecycle or await lifecycles.current_lifecycle(session, customer)


async def record_item(session: AsyncSession, item: FeedbackItem, *, due_hours: int) -> IntakeResult:
    """Store one item (one or two feedback rows); a detractor opens a follow-up."""
    customer = await find_customer(session, item)
    lifecycle = await lifecycle_at(session, customer, item.occurred_at)
    scored = item.kind in closed_loop.SCORE_KINDS
    rows: list[tuple[str, FeedbackKind, int | None, str | None]] = [
        (item.key, item.kind, item.score, None if scored else item.text)
    ]
    if scored and item.text:
        rows.append((f"{item.key}:comment", FeedbackKind.comment, None, item.text))
    stored: list[Feedback] = []
    created = False
    for key, kind, score, text in rows:
        row, new = await feedback_domain.record(
            session,
            feedback_domain.NewFeedback(
                idempotency_key=key,
                customer_id=customer.id,
                lifecycle=lifecycle,
                kind=kind,
                source=FeedbackSource.imported,
                channel=item.channel,
                score=score,
                text=text,
                created_at=item.occurred_at,
            ),
        )
        stored.append(row)
        created = created or new
    escalation = None
    sentiment = analysis.sentiment(item.text)
    if created and closed_loop.is_detractor(item.kind, item.score, sentiment):
        escalation = await closed_loop.open_follow_up(
            session,
            stored[0],
            due_hours=due_hours,
            comment=item.text if scored else None,
        )
    return IntakeResult(stored, created, escalation)


# ---- CSV import ---------------------------------------------------------------------------


@dataclass
class ImportReport:
    imported: int = 0
    duplicates: int = 0
    escalations: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def read_csv_rows(text: str) -> tuple[list[tuple[int, dict[str, str]]], list[tuple[int, str]]]:
    """(line number, row) pairs and header problems; line numbers count from 1 (the header)."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    unknown = [name for name in header if name not in CSV_COLUMNS]
    missing = [name for name in ("channel", "occurred_at") if name not in header]
    if unknown or missing:
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown column(s) {', '.join(unknown)}")
        return [], [(1, "; ".join(problems) + f" (columns: {', '.join(CSV_COLUMNS)})")]
    rows = []
    for row in reader:
        if None in row:
            rows.append((reader.line_num, {"__extra__": "1"}))
            continue
        rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items()}))
    return rows, []


def read_csv_file(path: Path) -> str:
    """The file's text; InvalidInput when it is too large or not UTF-8."""
    if path.stat().st_size > MAX_CSV_BYTES:
        raise InvalidInput(f"the file is larger than {MAX_CSV_BYTES // 2**20} MiB")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("the file is not UTF-8 text") from exc


async def import_csv(
    sessions: async_sessionmaker[AsyncSession], text: str, *, due_hours: int
) -> ImportReport:
    """Import every valid row (each in its own transaction); report the others by line."""
    report = ImportReport()
    rows, problems = read_csv_rows(text)
    report.errors.extend(problems)
    for line, row in rows:
        if "__extra__" in row:
            report.errors.append((line, "more values than columns"))
            continue
        try:
            item = parse_item(row)
            async with sessions() as session, session.begin():
                result = await record_item(session, item, due_hours=due_hours)
        except DomainError as exc:
            report.errors.append((line, exc.message))
            continue
        if result.created:
            report.imported += 1
            report.escalations += result.escalation is not None
        else:
            report.duplicates += 1
    return report
