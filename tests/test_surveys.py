"""In-chat surveys: dispatch with the fatigue rule, low-score rule, answered/declined marks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain import lifecycle as lifecycles
from bot.domain import surveys
from bot.storage.models import Conversation, FeedbackKind, SurveyDispatch, utcnow
from tests import factories

FATIGUE = Settings().survey_fatigue_days


async def _dispatches(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(SurveyDispatch)) or 0)


async def test_start_in_chat_creates_a_sent_dispatch_then_respects_fatigue(
    session: AsyncSession,
) -> None:
    owner = await factories.customer(session)
    lifecycle = await lifecycles.current_lifecycle(session, owner)
    conversation = Conversation(id="conv-1", customer_id=owner.id)
    session.add(conversation)
    await session.commit()
    before = utcnow()

    first = await surveys.start_in_chat(
        session, conversation, lifecycle, FeedbackKind.csat, "support_chat", FATIGUE
    )
    await session.commit()

    assert first is not None
    row = (await session.scalars(select(SurveyDispatch))).one()
    assert row.id == first.id
    assert (row.customer_id, row.lifecycle_id, row.conversation_id) == (
        owner.id,
        lifecycle.id,
        "conv-1",
    )
    assert (row.trigger, row.survey_kind) == ("support_chat", FeedbackKind.csat)
    assert row.sent_at is not None
    assert row.sent_at >= before - timedelta(seconds=1)
    assert row.sent_at == row.created_at
    assert (row.answered_at, row.declined_at, row.expired_at) == (None, None, None)

    for kind in (FeedbackKind.csat, FeedbackKind.nps, FeedbackKind.ces):
        again = await surveys.start_in_chat(
            session, conversation, lifecycle, kind, "support_chat", FATIGUE
        )
        assert again is None, kind
    await session.commit()
    assert await _dispatches(session) == 1

    churn = await surveys.start_in_chat(
        session,
        conversation,
        lifecycle,
        FeedbackKind.churn_reason,
        "subscription_cancelled",
        FATIGUE,
    )
    await session.commit()
    assert churn is not None
    assert churn.id != first.id
    assert churn.survey_kind is FeedbackKind.churn_reason
    assert await _dispatches(session) == 2


async def test_fatigue_is_per_customer_and_window_bound(session: AsyncSession) -> None:
    alice = await factories.customer(session, 1)
    bob = await factories.customer(session, 2)
    alice_life = await lifecycles.current_lifecycle(session, alice)
    bob_life = await lifecycles.current_lifecycle(session, bob)
    alice_chat = Conversation(id="conv-a", customer_id=alice.id)
    bob_chat = Conversation(id="conv-b", customer_id=bob.id)
    session.add_all([alice_chat, bob_chat])
    old = utcnow() - timedelta(days=FATIGUE + 1)
    session.add(
        SurveyDispatch(
            customer_id=alice.id,
            lifecycle_id=alice_life.id,
            conversation_id="conv-a",
            trigger="order_delivered",
            survey_kind=FeedbackKind.csat,
            created_at=old,
            sent_at=old,
        )
    )
    await session.commit()

    # the last survey is older than the fatigue window: asking again is fine
    alice_new = await surveys.start_in_chat(
        session, alice_chat, alice_life, FeedbackKind.nps, "renewal", FATIGUE
    )
    # another customer's recent survey does not count against Bob
    bob_new = await surveys.start_in_chat(
        session, bob_chat, bob_life, FeedbackKind.csat, "support_chat", FATIGUE
    )
    # a longer, configured fatigue window does include the old one
    alice_blocked_long = await surveys.start_in_chat(
        session, alice_chat, alice_life, FeedbackKind.csat, "support_chat", FATIGUE + 30
    )
    await session.commit()

    assert alice_new is not None
    assert bob_new is not None
    assert (alice_new.customer_id, bob_new.customer_id) == (alice.id, bob.id)
    assert alice_blocked_long is None
    assert await _dispatches(session) == 3


@pytest.mark.parametrize(
    ("kind", "score", "comment_sentiment", "low"),
    [
        (FeedbackKind.csat, 1, None, True),
        (FeedbackKind.csat, 2, None, True),
        (FeedbackKind.csat, 3, None, False),
        (FeedbackKind.csat, 5, -0.9, False),
        (FeedbackKind.ces, 5, None, False),
        (FeedbackKind.ces, 6, None, True),
        (FeedbackKind.ces, 7, None, True),
        (FeedbackKind.ces, 1, -0.9, False),
        (FeedbackKind.nps, 0, None, False),
        (FeedbackKind.nps, 3, 0.6, False),
        (FeedbackKind.nps, 6, -0.2, True),
        (FeedbackKind.nps, 6, 0.0, False),
        (FeedbackKind.nps, 6, -0.5, True),
        (FeedbackKind.nps, 0, -0.8, True),
        (FeedbackKind.nps, 7, -0.9, False),
        (FeedbackKind.nps, 10, -0.9, False),
        (FeedbackKind.comment, 1, -0.9, False),
    ],
)
def test_is_low_score(
    kind: FeedbackKind, score: int, comment_sentiment: float | None, low: bool
) -> None:
    assert surveys.is_low_score(kind, score, comment_sentiment) is low


def _dispatch() -> SurveyDispatch:
    now = utcnow()
    return SurveyDispatch(
        customer_id=1,
        lifecycle_id=1,
        trigger="support_chat",
        survey_kind=FeedbackKind.csat,
        created_at=now,
        sent_at=now,
    )


def test_mark_declined_after_answered_does_nothing() -> None:
    dispatch = _dispatch()
    surveys.mark_answered(dispatch)
    answered_at = dispatch.answered_at
    assert answered_at is not None

    surveys.mark_declined(dispatch)

    assert dispatch.declined_at is None
    assert dispatch.answered_at == answered_at


def test_mark_declined_once_and_answered_once() -> None:
    declined = _dispatch()
    surveys.mark_declined(declined)
    first = declined.declined_at
    assert first is not None
    surveys.mark_declined(declined)
    assert declined.declined_at == first

    answered = _dispatch()
    surveys.mark_answered(answered)
    first = answered.answered_at
    surveys.mark_answered(answered)
    assert answered.answered_at == first
    assert answered.declined_at is None
