"""Recording feedback: idempotent, validated, tied to the lifecycle's stage at that moment."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import feedback
from bot.domain import lifecycle as lifecycles
from bot.domain.enums import Channel, FeedbackKind, FeedbackSource, OrderStatus, Stage
from bot.domain.errors import InvalidInput
from bot.domain.feedback import MAX_FEEDBACK_CHARS, NewFeedback
from bot.storage.models import Customer, Feedback, Lifecycle
from tests import factories


async def _rows(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Feedback)) or 0)


def _new(lifecycle: Lifecycle, key: str = "k-1", **fields: Any) -> NewFeedback:
    values: dict[str, Any] = {
        "idempotency_key": key,
        "customer_id": lifecycle.customer_id,
        "lifecycle": lifecycle,
        "kind": FeedbackKind.csat,
        "source": FeedbackSource.chat_survey,
        "score": 4,
    }
    values.update(fields)
    return NewFeedback(**values)


async def test_record_stores_stage_at_that_moment_sentiment_and_themes(
    session: AsyncSession,
) -> None:
    owner = await factories.customer(session)
    order = await factories.order(session, owner, "A10001", OrderStatus.delivered)
    lifecycle = await lifecycles.lifecycle_for_order(session, order)
    await session.commit()
    assert lifecycle.stage is Stage.use

    score_row, created = await feedback.record(session, _new(lifecycle, "csat-1", score=5))
    assert created is True
    lifecycles.advance(lifecycle, Stage.support)
    complaint, created_complaint = await feedback.record(
        session,
        _new(
            lifecycle,
            "complaint-1",
            kind=FeedbackKind.complaint,
            source=FeedbackSource.free_text,
            score=None,
            text="  The parcel arrived broken and support was rude. Terrible!  ",
        ),
    )
    await session.commit()

    assert created_complaint is True
    rows = {row.idempotency_key: row for row in await session.scalars(select(Feedback))}
    assert set(rows) == {"csat-1", "complaint-1"}
    first = rows["csat-1"]
    assert first.id == score_row.id
    assert (first.kind, first.score, first.stage) == (FeedbackKind.csat, 5, Stage.use)
    assert (first.text, first.sentiment, first.themes) == (None, None, [])
    assert (first.customer_id, first.lifecycle_id, first.order_id) == (
        owner.id,
        lifecycle.id,
        order.id,
    )
    assert (first.channel, first.source) == (Channel.website_chat, FeedbackSource.chat_survey)
    assert first.created_at is not None
    second = rows["complaint-1"]
    assert second.id == complaint.id
    assert second.stage is Stage.support
    assert second.score is None
    assert second.text == "The parcel arrived broken and support was rude. Terrible!"
    assert second.sentiment is not None
    assert second.sentiment <= -0.5
    assert second.themes == ["delivery", "product_quality", "support"]


async def test_same_idempotency_key_returns_first_row_unchanged(session: AsyncSession) -> None:
    owner = await factories.customer(session)
    lifecycle = await lifecycles.current_lifecycle(session, owner)
    await session.commit()

    first, created_first = await feedback.record(session, _new(lifecycle, "retry-1", score=2))
    await session.commit()
    again, created_again = await feedback.record(
        session, _new(lifecycle, "retry-1", score=5, kind=FeedbackKind.csat)
    )
    await session.commit()
    other_kind, created_other = await feedback.record(
        session,
        _new(lifecycle, "retry-1", kind=FeedbackKind.comment, score=None, text="different"),
    )
    await session.commit()

    assert (created_first, created_again, created_other) == (True, False, False)
    assert again.id == first.id == other_kind.id
    assert await _rows(session) == 1
    session.expire_all()
    row = (await session.scalars(select(Feedback))).one()
    assert (row.kind, row.score, row.text) == (FeedbackKind.csat, 2, None)


INVALID: list[tuple[dict[str, Any], str]] = [
    ({"kind": FeedbackKind.csat, "score": 0}, "csat score must be between 1 and 5"),
    ({"kind": FeedbackKind.csat, "score": 6}, "csat score must be between 1 and 5"),
    ({"kind": FeedbackKind.csat, "score": None}, "csat score must be between 1 and 5"),
    ({"kind": FeedbackKind.nps, "score": 11}, "nps score must be between 0 and 10"),
    ({"kind": FeedbackKind.nps, "score": -1}, "nps score must be between 0 and 10"),
    ({"kind": FeedbackKind.ces, "score": 8}, "ces score must be between 1 and 7"),
    ({"kind": FeedbackKind.ces, "score": 0}, "ces score must be between 1 and 7"),
    (
        {"kind": FeedbackKind.complaint, "score": None, "text": None},
        "complaint feedback needs a text",
    ),
    (
        {"kind": FeedbackKind.complaint, "score": None, "text": "   "},
        "complaint feedback needs a text",
    ),
    ({"kind": FeedbackKind.comment, "score": None, "text": ""}, "comment feedback needs a text"),
    ({"kind": FeedbackKind.praise, "score": None, "text": None}, "praise feedback needs a text"),
    ({"kind": FeedbackKind.churn_reason, "score": None}, "churn_reason feedback needs a text"),
    (
        {"kind": FeedbackKind.comment, "score": None, "text": "x" * (MAX_FEEDBACK_CHARS + 1)},
        "feedback text is limited to 5000 characters",
    ),
    (
        {"kind": FeedbackKind.csat, "score": 4, "text": "y" * 6000},
        "feedback text is limited to 5000 characters",
    ),
]


async def test_invalid_feedback_raises_and_writes_nothing(session: AsyncSession) -> None:
    owner = await factories.customer(session)
    lifecycle = await lifecycles.current_lifecycle(session, owner)
    await session.commit()

    for n, (fields, message) in enumerate(INVALID):
        with pytest.raises(InvalidInput) as caught:
            await feedback.record(session, _new(lifecycle, f"bad-{n}", **fields))
        assert caught.value.message == message, fields
        assert caught.value.status == 422
    await session.commit()

    assert await _rows(session) == 0


async def test_boundary_values_are_accepted(session: AsyncSession) -> None:
    owner = await factories.customer(session)
    lifecycle = await lifecycles.current_lifecycle(session, owner)
    cases = [
        (FeedbackKind.csat, 1, None),
        (FeedbackKind.csat, 5, None),
        (FeedbackKind.nps, 0, None),
        (FeedbackKind.nps, 10, None),
        (FeedbackKind.ces, 1, None),
        (FeedbackKind.ces, 7, None),
        (FeedbackKind.comment, None, "z" * MAX_FEEDBACK_CHARS),
    ]
    for n, (kind, score, text) in enumerate(cases):
        _, created = await feedback.record(
            session, _new(lifecycle, f"ok-{n}", kind=kind, score=score, text=text)
        )
        assert created is True
    await session.commit()

    rows = (await session.scalars(select(Feedback).order_by(Feedback.id))).all()
    assert [(row.kind, row.score) for row in rows] == [(k, s) for k, s, _ in cases]
    assert rows[-1].text is not None
    assert len(rows[-1].text) == MAX_FEEDBACK_CHARS


def _pause_after_first_scalar(session: AsyncSession, gate: _Gate) -> None:
    """Make both sessions pass the 'already recorded?' check before either inserts."""
    original: Callable[..., Awaitable[Any]] = session.scalar
    calls = 0

    async def scalar(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        result = await original(*args, **kwargs)
        calls += 1
        if calls == 1:
            await gate.wait()
        return result

    session.scalar = scalar  # type: ignore[method-assign]


class _Gate:
    """asyncio.Barrier for two parties (Python 3.10 has none)."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.event = asyncio.Event()

    async def wait(self) -> None:
        self.arrived += 1
        if self.arrived >= self.parties:
            self.event.set()
        await asyncio.wait_for(self.event.wait(), timeout=10)


async def test_concurrent_record_of_the_same_key_writes_one_row(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    owner = await factories.customer(session)
    lifecycle = await lifecycles.current_lifecycle(session, owner)
    await session.commit()
    lifecycle_id = lifecycle.id
    gate = _Gate(2)

    async def attempt(score: int) -> tuple[int, bool]:
        async with session_factory() as own:
            _pause_after_first_scalar(own, gate)
            mine = await own.get(Lifecycle, lifecycle_id)
            assert mine is not None
            row, created = await feedback.record(own, _new(mine, "race-1", score=score))
            await own.commit()
            return row.id, created

    results = await asyncio.wait_for(asyncio.gather(attempt(3), attempt(4)), timeout=30)

    assert sorted(created for _, created in results) == [False, True]
    assert results[0][0] == results[1][0]
    assert await _rows(session) == 1
    row = (await session.scalars(select(Feedback))).one()
    winner_score = 3 if results[0][1] else 4
    assert (row.id, row.score, row.idempotency_key) == (results[0][0], winner_score, "race-1")


async def test_anonymous_feedback_on_no_order_is_not_discovery(session: AsyncSession) -> None:
    """Tester 5: an anonymous visitor's complaint (no order named or verified) counted as
    Discovery on the journey map; it is unattributed now. Their answer to "how did you hear
    about us" is discovery; once they verified an order, feedback lands on its stage."""
    from datetime import timedelta

    from bot.domain import chat, journey
    from bot.domain.feedback_query import DateRange, FeedbackFilter
    from bot.storage.models import Conversation, utcnow

    await chat.record_opinion(
        session, "conv-anon", FeedbackKind.complaint, "delivery took forever", "m1"
    )
    conversation = await session.get_one(Conversation, "conv-anon")
    anonymous = conversation.customer_id
    assert anonymous is not None
    await feedback.record(
        session,
        NewFeedback(
            idempotency_key="anon-source",
            customer_id=anonymous,
            lifecycle=await lifecycles.current_lifecycle(
                session, await session.get_one(Customer, anonymous)
            ),
            kind=FeedbackKind.discovery_source,
            source=FeedbackSource.chat_survey,
            text="a friend told me",
        ),
    )
    owner = await factories.customer(session)
    order = await factories.order(session, owner, "A10001", OrderStatus.delivered)
    conversation.customer_id, conversation.order_id = owner.id, order.id  # verified
    await chat.record_opinion(
        session, "conv-anon", FeedbackKind.complaint, "the towel has a hole", "m2"
    )
    await session.commit()

    rows = (await session.scalars(select(Feedback).order_by(Feedback.id))).all()
    assert [(r.text, r.stage) for r in rows] == [
        ("delivery took forever", None),
        ("a friend told me", Stage.discovery),
        ("the towel has a hole", Stage.use),
    ]
    today = utcnow().date()
    flt = FeedbackFilter(range=DateRange(today - timedelta(days=1), today + timedelta(days=1)))
    found = await journey.journey_map(session, flt, journey.PitfallThresholds())
    assert [(s.stage, s.counts.volume) for s in found.stages] == [
        ("discovery", 1),
        ("research", 0),
        ("purchase", 0),
        ("use", 1),
        ("support", 0),
        ("unattributed", 1),
    ]
