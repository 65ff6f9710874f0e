"""Escalations to a human: one per conversation, priority by reason, hand-off status."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import escalations
from bot.domain.conversations import bot_may_answer
from bot.domain.enums import ConversationStatus, EscalationReason, EscalationStatus
from bot.storage.models import Conversation, Escalation, utcnow
from tests import factories


def test_priorities() -> None:
    assert {
        EscalationReason.negative_feedback: 3,
        EscalationReason.customer_request: 2,
        EscalationReason.bot_failure: 2,
        EscalationReason.fallback: 1,
    } == escalations.PRIORITY


@pytest.mark.parametrize(
    ("status", "answers"),
    [
        (ConversationStatus.bot, True),
        (ConversationStatus.waiting_for_agent, False),
        (ConversationStatus.with_agent, False),
        (ConversationStatus.closed, False),
    ],
)
def test_bot_may_answer(status: ConversationStatus, answers: bool) -> None:
    assert bot_may_answer(Conversation(id="c", status=status)) is answers


async def test_escalate_creates_one_then_reuses_it_and_raises_priority(
    session: AsyncSession,
) -> None:
    owner = await factories.customer(session)
    conversation = Conversation(id="conv-1", customer_id=owner.id, status=ConversationStatus.bot)
    session.add(conversation)
    await session.commit()

    first, created = await escalations.escalate(
        session, conversation, EscalationReason.fallback, summary="two misunderstandings"
    )
    await session.commit()
    assert created is True
    assert conversation.status is ConversationStatus.waiting_for_agent
    assert (first.reason, first.priority, first.status) == (
        EscalationReason.fallback,
        1,
        EscalationStatus.waiting,
    )
    assert (first.conversation_id, first.customer_id, first.summary) == (
        "conv-1",
        owner.id,
        "two misunderstandings",
    )

    again, created_again = await escalations.escalate(
        session, conversation, EscalationReason.negative_feedback
    )
    lower, created_lower = await escalations.escalate(
        session, conversation, EscalationReason.customer_request
    )
    await session.commit()

    assert (created_again, created_lower) == (False, False)
    assert again.id == lower.id == first.id
    rows = (await session.scalars(select(Escalation))).all()
    assert len(rows) == 1
    await session.refresh(rows[0])
    # the first reason is kept; priority only goes up
    assert (rows[0].reason, rows[0].priority) == (EscalationReason.fallback, 3)
    assert conversation.status is ConversationStatus.waiting_for_agent


async def test_priority_by_reason_and_queued_follow_up(session: AsyncSession) -> None:
    for n in range(len(EscalationReason)):
        session.add(Conversation(id=f"conv-{n}"))
    session.add(Conversation(id="conv-later"))
    await session.commit()

    for n, reason in enumerate(EscalationReason):
        conversation = await session.get(Conversation, f"conv-{n}")
        assert conversation is not None
        escalation, created = await escalations.escalate(session, conversation, reason)
        assert created is True
        assert escalation.priority == escalations.PRIORITY[reason]
        assert escalation.customer_id is None  # anonymous visitor
        assert conversation.status is ConversationStatus.waiting_for_agent

    later = await session.get(Conversation, "conv-later")
    assert later is not None
    queued, created = await escalations.escalate(
        session,
        later,
        EscalationReason.negative_feedback,
        hand_over_now=False,
    )
    await session.commit()

    assert created is True
    assert queued.priority == 3
    await session.refresh(later)
    assert later.status is ConversationStatus.bot
    rows = (await session.scalars(select(Escalation).order_by(Escalation.id))).all()
    assert [(row.conversation_id, row.reason) for row in rows] == [
        *[(f"conv-{n}", reason) for n, reason in enumerate(EscalationReason)],
        ("conv-later", EscalationReason.negative_feedback),
    ]


async def test_resolved_escalation_is_not_reused_and_agent_chat_keeps_status(
    session: AsyncSession,
) -> None:
    conversation = Conversation(id="conv-1", status=ConversationStatus.bot)
    session.add(conversation)
    await session.commit()
    old, _ = await escalations.escalate(session, conversation, EscalationReason.customer_request)
    old.status, old.resolved_at = EscalationStatus.resolved, utcnow()
    conversation.status = ConversationStatus.with_agent
    await session.commit()

    new, created = await escalations.escalate(session, conversation, EscalationReason.fallback)
    await session.commit()

    assert created is True
    assert new.id != old.id
    assert new.priority == 1
    # a conversation already with an agent is not pushed back to the queue
    assert conversation.status is ConversationStatus.with_agent
    assert len((await session.scalars(select(Escalation))).all()) == 2
