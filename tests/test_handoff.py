"""Handoff domain: queue order, atomic claim (a real race on both databases), reply, resolve."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import escalations, handoff, staff
from bot.domain.enums import (
    ConversationStatus,
    EscalationReason,
    EscalationStatus,
    MessageSender,
    StaffRole,
)
from bot.domain.errors import Conflict
from bot.storage.models import AuditLog, Conversation, Escalation, Message, StaffUser


async def _agents(session: AsyncSession) -> tuple[StaffUser, StaffUser]:
    sam = await staff.create_user(
        session, "sam@example.com", "Sam (support)", StaffRole.agent, "long-enough-pw"
    )
    alex = await staff.create_user(
        session, "alex@example.com", "Alex (support)", StaffRole.agent, "long-enough-pw"
    )
    await session.commit()
    return sam, alex


async def _escalated(
    session: AsyncSession,
    conversation_id: str,
    reason: EscalationReason = EscalationReason.customer_request,
) -> Escalation:
    conversation = Conversation(id=conversation_id)
    session.add(conversation)
    await session.flush()
    escalation, _ = await escalations.escalate(session, conversation, reason)
    await session.commit()
    return escalation


async def test_queue_is_sorted_by_priority_then_age(session: AsyncSession) -> None:
    sam, _ = await _agents(session)
    first = await _escalated(session, "c1", EscalationReason.fallback)
    second = await _escalated(session, "c2", EscalationReason.customer_request)
    third = await _escalated(session, "c3", EscalationReason.negative_feedback)

    items = await handoff.queue(session, sam)

    assert [i["escalation_id"] for i in items] == [third.id, second.id, first.id]
    assert [i["reason"] for i in items] == ["negative_feedback", "customer_request", "fallback"]


async def test_two_agents_claim_at_once_exactly_one_wins(
    session_factory: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    sam, alex = await _agents(session)
    escalation = await _escalated(session, "c1")

    async def attempt(agent: StaffUser) -> Escalation:
        async with session_factory() as own, own.begin():
            return await handoff.claim(own, escalation.id, agent)

    results = await asyncio.gather(attempt(sam), attempt(alex), return_exceptions=True)

    winners = [r for r in results if isinstance(r, Escalation)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], Conflict) and losers[0].code == "already_claimed"
    winner_name = "Sam (support)" if winners[0].claimed_by_id == sam.id else "Alex (support)"
    assert losers[0].message == f"This conversation was already claimed by {winner_name}."
    async with session_factory() as fresh:
        conversation = await fresh.get_one(Conversation, "c1")
        assert conversation.status is ConversationStatus.with_agent
        claims = (await fresh.scalars(select(AuditLog).where(AuditLog.action == "claim"))).all()
        assert len(claims) == 1


async def test_only_the_claiming_agent_replies_and_the_reply_is_labelled(
    session: AsyncSession,
) -> None:
    sam, alex = await _agents(session)
    escalation = await _escalated(session, "c1")
    with pytest.raises(Conflict):
        await handoff.agent_reply(session, "c1", sam, "hello")
    await handoff.claim(session, escalation.id, sam)

    with pytest.raises(Conflict):
        await handoff.agent_reply(session, "c1", alex, "me too")
    message = await handoff.agent_reply(session, "c1", sam, "  Hi, Sam here  ")

    assert (message.sender, message.text, message.author) == (
        MessageSender.agent,
        "Hi, Sam here",
        "Sam (support)",
    )


async def test_notes_are_never_messages(session: AsyncSession) -> None:
    sam, _ = await _agents(session)
    await _escalated(session, "c1")
    note = await handoff.add_note(session, "c1", sam, "VIP customer, be nice")
    assert note.text == "VIP customer, be nice"
    assert (await session.scalars(select(Message))).all() == []


async def test_transfer_then_resolve_hands_back_to_the_bot(session: AsyncSession) -> None:
    sam, alex = await _agents(session)
    escalation = await _escalated(session, "c1")
    await handoff.claim(session, escalation.id, sam)

    await handoff.transfer(session, escalation.id, sam, alex.id)
    with pytest.raises(Conflict):
        await handoff.resolve(session, escalation.id, sam)
    handback = await handoff.resolve(session, escalation.id, alex)

    assert handback.conversation_id == "c1"
    assert handback.escalation.status is EscalationStatus.resolved
    assert (await session.get_one(Conversation, "c1")).status is ConversationStatus.bot
    audit = select(AuditLog).where(AuditLog.target_type == "escalation").order_by(AuditLog.id)
    actions = [a.action for a in (await session.scalars(audit)).all()]
    assert actions == ["claim", "transfer", "resolve"]
    with pytest.raises(Conflict):
        await handoff.resolve(session, escalation.id, alex)


async def test_an_escalation_waiting_too_long_is_raised_one_level(session: AsyncSession) -> None:
    from datetime import timedelta

    from bot.storage.models import utcnow

    sam, _ = await _agents(session)
    old = await _escalated(session, "c1", EscalationReason.fallback)
    new = await _escalated(session, "c2", EscalationReason.customer_request)
    old.created_at = utcnow() - timedelta(minutes=20)
    await session.commit()

    items = await handoff.queue(session, sam, aging_minutes=15)

    # Raised from 1 to 2, the older one now comes before the newer priority-2 request.
    assert [(i["escalation_id"], i["priority"], i["overdue"]) for i in items] == [
        (old.id, 2, True),
        (new.id, 2, False),
    ]
