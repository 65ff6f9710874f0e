"""Recording feedback idempotently, tied to a lifecycle and the stage it is in at that moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import analysis
from bot.domain.enums import Channel, FeedbackKind, FeedbackSource, Stage
from bot.domain.errors import InvalidInput
from bot.domain.scores import SCALES
from bot.storage.models import Customer, Feedback, Lifecycle, utcnow

MAX_FEEDBACK_CHARS = 5000
TEXT_KINDS = frozenset(
    {
        FeedbackKind.comment,
        FeedbackKind.complaint,
        FeedbackKind.praise,
        FeedbackKind.churn_reason,
        FeedbackKind.discovery_source,
    }
)


@dataclass(frozen=True)
class NewFeedback:
    idempotency_key: str
    customer_id: int
    lifecycle: Lifecycle
    kind: FeedbackKind
    source: FeedbackSource
    channel: Channel = Channel.website_chat
    score: int | None = None
    text: str | None = None
    conversation_id: str | None = None
    survey_dispatch_id: int | None = None
    order_id: int | None = None
    created_at: datetime | None = None


def _validate(new: NewFeedback) -> None:
    scale = SCALES.get(new.kind.value)
    if scale is not None:
        low, high = scale
        if new.score is None or not low <= new.score <= high:
            raise InvalidInput(f"{new.kind.value} score must be between {low} and {high}")
    if new.kind in TEXT_KINDS and not (new.text and new.text.strip()):
        raise InvalidInput(f"{new.kind.value} feedback needs a text")
    if new.text is not None and len(new.text) > MAX_FEEDBACK_CHARS:
        raise InvalidInput(f"feedback text is limited to {MAX_FEEDBACK_CHARS} characters")


async def _stage(session: AsyncSession, new: NewFeedback) -> Stage | None:
    """The lifecycle's stage now; none (the dashboard's "unattributed") for an anonymous
    visitor's feedback on no order while their journey reads discovery: nothing says they
    are discovering the shop (tester 5: post-purchase CSAT and complaints of visitors who
    never named a verified order counted as Discovery). How they heard of us is discovery."""
    lifecycle = new.lifecycle
    if (
        lifecycle.stage is not Stage.discovery
        or new.kind is FeedbackKind.discovery_source
        or new.order_id is not None
        or lifecycle.order_id is not None
    ):
        return lifecycle.stage
    customer = await session.get(Customer, new.customer_id)
    return None if customer is not None and customer.is_anonymous else lifecycle.stage


async def record(session: AsyncSession, new: NewFeedback) -> tuple[Feedback, bool]:
    """Store one feedback row; the same idempotency key returns the first row, unchanged."""
    _validate(new)
    existing = await session.scalar(
        select(Feedback).where(Feedback.idempotency_key == new.idempotency_key)
    )
    if existing is not None:
        return existing, False
    text = new.text.strip() if new.text else None
    row = Feedback(
        idempotency_key=new.idempotency_key,
        customer_id=new.customer_id,
        lifecycle_id=new.lifecycle.id,
        stage=await _stage(session, new),
        channel=new.channel,
        source=new.source,
        kind=new.kind,
        score=new.score,
        text=text,
        sentiment=analysis.sentiment(text),
        themes=analysis.themes(text),
        conversation_id=new.conversation_id,
        survey_dispatch_id=new.survey_dispatch_id,
        order_id=new.order_id or new.lifecycle.order_id,
        created_at=new.created_at or utcnow(),
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # A concurrent retry won the race on the unique key: return its row.
        winner = await session.scalar(
            select(Feedback).where(Feedback.idempotency_key == new.idempotency_key)
        )
        if winner is None:
            raise
        return winner, False
    return row, True
