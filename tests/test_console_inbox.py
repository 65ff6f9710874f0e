"""Console round two (issue #20), domain side: unread counts and the customer's last
words, priority words and overdue, release / take-over / transfer to an offline
colleague, history search and reopen, canned responses. Both databases."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import escalations, handoff, inbox, staff, views
from bot.domain.enums import (
    ConversationStatus,
    EscalationReason,
    EscalationStatus,
    MessageSender,
    OrderStatus,
    StaffRole,
)
from bot.domain.errors import Conflict, InvalidInput
from bot.storage import repositories
from bot.storage.models import (
    AuditLog,
    Conversation,
    Customer,
    Escalation,
    Message,
    Order,
    StaffUser,
    utcnow,
)

PASSWORD = "long-enough-pw"


async def _staff(session: AsyncSession) -> tuple[StaffUser, StaffUser, StaffUser]:
    sam = await staff.create_user(session, "sam@example.com", "Sam", StaffRole.agent, PASSWORD)
    alex = await staff.create_user(session, "alex@example.com", "Alex", StaffRole.agent, PASSWORD)
    ada = await staff.create_user(session, "ada@example.com", "Ada", StaffRole.admin, PASSWORD)
    await session.commit()
    return sam, alex, ada


async def _escalated(
    session: AsyncSession,
    conversation_id: str,
    reason: EscalationReason = EscalationReason.customer_request,
    customer: Customer | None = None,
) -> Escalation:
    conversation = Conversation(id=conversation_id, customer_id=customer.id if customer else None)
    session.add(conversation)
    await session.flush()
    escalation, _ = await escalations.escalate(session, conversation, reason)
    await session.commit()
    return escalation


async def _say(
    session: AsyncSession, conversation_id: str, sender: MessageSender, text: str
) -> Message:
    message = await repositories.add_message(session, conversation_id, sender, text)
    await session.commit()
    return message


async def _actions(session: AsyncSession) -> list[str]:
    audit = select(AuditLog).where(AuditLog.target_type == "escalation").order_by(AuditLog.id)
    return [a.action for a in (await session.scalars(audit)).all()]


# ---- 1. unread counts, the customer's last words -----------------------------------------


async def test_unread_counts_the_customers_messages_after_each_agents_read_marker(
    session: AsyncSession,
) -> None:
    sam, alex, _ = await _staff(session)
    await _escalated(session, "c1")
    await _say(session, "c1", MessageSender.customer, "hi")
    await _say(session, "c1", MessageSender.bot, "Hello!")
    await _say(session, "c1", MessageSender.customer, "where is my parcel")
    await _say(session, "c1", MessageSender.system, "A person from our team will reply here.")

    [item] = await handoff.queue(session, sam)
    # The queue shows what the customer said, not the system note after it.
    assert (item["unread"], item["last_message"]["text"]) == (2, "where is my parcel")

    assert await inbox.mark_read(session, sam.id, "c1") == 4
    await session.commit()
    await _say(session, "c1", MessageSender.customer, "hello??")

    assert (await handoff.queue(session, sam))[0]["unread"] == 1
    assert (await handoff.queue(session, alex))[0]["unread"] == 3  # Alex never opened it
    # A marker never moves backwards (a late request from another tab).
    assert await inbox.mark_read(session, sam.id, "c1", 2) == 4
    assert await inbox.mark_read(session, sam.id, "c1", 5) == 5
    await session.commit()
    assert (await handoff.queue(session, sam))[0]["unread"] == 0
    with pytest.raises(InvalidInput):
        await inbox.mark_read(session, sam.id, "c1", "5")


# ---- 3. priority as words, overdue -------------------------------------------------------


async def test_priority_is_a_word_and_overdue_escalations_are_marked(session: AsyncSession) -> None:
    sam, _, _ = await _staff(session)
    await _escalated(session, "c1", EscalationReason.fallback)
    await _escalated(session, "c2", EscalationReason.customer_request)
    fresh = await _escalated(session, "c3", EscalationReason.negative_feedback)
    aged = await _escalated(session, "c4", EscalationReason.negative_feedback)
    aged.created_at = utcnow() - timedelta(minutes=20)
    customer = Customer(external_id="C9", name="Nina", email="nina@example.com")
    session.add(customer)
    await session.flush()
    follow_up = Escalation(
        customer_id=customer.id,
        reason=EscalationReason.negative_feedback,
        priority=3,
        status=EscalationStatus.claimed,
        claimed_by_id=sam.id,
        summary="NPS 2 by email",
        due_at=utcnow() - timedelta(hours=1),
    )
    session.add(follow_up)
    await session.commit()

    items = await handoff.queue(session, sam, aging_minutes=15)

    assert [
        (i["conversation_id"], i["priority"], i["priority_label"], i["overdue"]) for i in items
    ] == [
        ("c4", 4, "urgent", True),  # negative feedback waiting 20 min
        ("c3", 3, "high", False),
        (None, 3, "high", True),  # a follow-up past its due time (newer than c3)
        ("c2", 2, "normal", False),
        ("c1", 1, "normal", False),
    ]
    assert views.escalation_json(fresh, {})["priority_label"] == "high"


# ---- 2. release, take-over, transfer to an offline colleague -----------------------------


async def test_a_chat_transferred_to_an_offline_colleague_can_be_taken_over(
    session: AsyncSession,
) -> None:
    """The reported bug: Sam transferred to Alex, who was away; nobody else could transfer
    or resolve it ("Claim this conversation before replying"), and there was no way out."""
    sam, alex, _ = await _staff(session)
    escalation = await _escalated(session, "c1")
    await handoff.claim(session, escalation.id, sam)

    with pytest.raises(Conflict) as offline:
        await handoff.transfer(session, escalation.id, sam, alex.id, online_ids={sam.id})
    assert (offline.value.code, str(offline.value)) == (
        "agent_offline",
        "Alex is offline: they will not see this conversation until they sign in. Transfer anyway?",
    )
    await handoff.transfer(session, escalation.id, sam, alex.id, online_ids={sam.id}, force=True)
    await session.commit()

    with pytest.raises(Conflict) as resolving:
        await handoff.resolve(session, escalation.id, sam)
    assert (
        str(resolving.value)
        == "A colleague has this conversation: take it over before resolving it."
    )
    taken = await handoff.take_over(session, escalation.id, sam, online_ids={sam.id})
    await session.commit()
    assert (taken.status, taken.claimed_by_id) == (EscalationStatus.claimed, sam.id)
    await handoff.agent_reply(session, "c1", sam, "Sam again, sorting this out")
    await handoff.resolve(session, escalation.id, sam)
    await session.commit()
    assert await _actions(session) == ["claim", "transfer", "take_over", "resolve"]


async def test_take_over_waits_for_an_idle_claim_unless_admin(session: AsyncSession) -> None:
    sam, alex, ada = await _staff(session)
    escalation = await _escalated(session, "c1")
    await handoff.claim(session, escalation.id, sam)
    await handoff.agent_reply(session, "c1", sam, "Looking into it")
    await session.commit()
    online = {sam.id, alex.id}

    with pytest.raises(Conflict) as active:
        await handoff.take_over(session, escalation.id, alex, online_ids=online, idle_minutes=15)
    assert (active.value.code, str(active.value)) == (
        "claim_active",
        "Sam is online and active in this conversation. You can take it over if they stay "
        "idle for 14 more minutes, or ask an admin to reassign it.",
    )
    with pytest.raises(Conflict) as mine:
        await handoff.take_over(session, escalation.id, sam, online_ids=online)
    assert mine.value.code == "already_yours"

    # Sam's claim and last reply are 16 minutes old: idle.
    escalation.claimed_at = utcnow() - timedelta(minutes=16)
    for message in await repositories.transcript(session, "c1"):
        message.created_at = utcnow() - timedelta(minutes=16)
    await session.commit()
    taken = await handoff.take_over(session, escalation.id, alex, online_ids=online)
    await session.commit()
    assert taken.claimed_by_id == alex.id

    # An admin reassigns any claim at once, even an active one.
    reassigned = await handoff.take_over(session, escalation.id, ada, online_ids=online)
    await handoff.transfer(session, escalation.id, ada, sam.id, online_ids=online)
    await session.commit()
    assert (reassigned.claimed_by_id, escalation.claimed_by_id) == (sam.id, sam.id)
    assert await _actions(session) == ["claim", "take_over", "take_over", "transfer"]


async def test_release_puts_the_chat_back_in_the_queue(session: AsyncSession) -> None:
    sam, alex, _ = await _staff(session)
    escalation = await _escalated(session, "c1")
    await handoff.claim(session, escalation.id, sam)
    await session.commit()

    with pytest.raises(Conflict) as not_holder:
        await handoff.release(session, escalation.id, alex)
    assert (
        str(not_holder.value)
        == "A colleague has this conversation: take it over before releasing it."
    )
    released = await handoff.release(session, escalation.id, sam)
    await session.commit()

    assert (released.status, released.claimed_by_id) == (EscalationStatus.waiting, None)
    conversation = await session.get_one(Conversation, "c1")
    assert conversation.status is ConversationStatus.waiting_for_agent
    assert [i["status"] for i in await handoff.queue(session, alex, "unassigned")] == ["waiting"]
    with pytest.raises(Conflict):
        await handoff.release(session, escalation.id, sam)
    claimed = await handoff.claim(session, escalation.id, alex)
    assert claimed.claimed_by_id == alex.id


# ---- 5. history, search, reopen ----------------------------------------------------------


async def _resolved_chat(
    session: AsyncSession, agent: StaffUser, conversation_id: str, customer: Customer, words: str
) -> Escalation:
    escalation = await _escalated(session, conversation_id, customer=customer)
    await _say(session, conversation_id, MessageSender.customer, words)
    await handoff.claim(session, escalation.id, agent)
    await handoff.resolve(session, escalation.id, agent)
    await session.commit()
    return escalation


async def test_history_finds_resolved_chats_by_customer_order_text_and_date(
    session: AsyncSession,
) -> None:
    sam, alex, _ = await _staff(session)
    tom = Customer(external_id="C1002", name="Tom Baker", email="tom@example.com")
    eva = Customer(external_id="C1003", name="Eva Green", email="eva@example.com")
    session.add_all([tom, eva])
    await session.flush()
    session.add(
        Order(
            number="A10042",
            customer_id=eva.id,
            status=OrderStatus.shipped,
            total=Decimal("19.90"),
            shipping_address="x",
            placed_at=utcnow(),
        )
    )
    first = await _resolved_chat(session, sam, "c1", tom, "my parcel is late")
    second = await _resolved_chat(session, sam, "c2", eva, "the lid is broken_100%")
    first.resolved_at = utcnow() - timedelta(days=3)
    await _escalated(session, "c3", customer=tom)  # still open: not history
    await session.commit()

    async def found(**query: Any) -> list[str]:
        return [i["conversation_id"] for i in await inbox.history(session, sam, **query)]

    assert await found() == ["c2", "c1"]
    assert await found(query="TOM") == ["c1"]
    assert await found(query="eva@example") == ["c2"]
    assert await found(query="C1002") == ["c1"]
    assert await found(query="a10042") == ["c2"]
    assert await found(query="parcel is") == ["c1"]
    assert await found(query="broken_100%") == ["c2"]
    assert await found(query="k_n") == await found(query="l%d") == []  # not wildcards
    today = utcnow().date()
    assert await found(date_from=today.isoformat()) == ["c2"]
    assert await found(date_to=(today - timedelta(days=1)).isoformat()) == ["c1"]
    [item] = await inbox.history(session, sam, query="tom")
    assert (item["customer"]["name"], item["last_message"]["text"], item["claimed_by"]["id"]) == (
        "Tom Baker",
        "my parcel is late",
        sam.id,
    )
    with pytest.raises(InvalidInput):
        await inbox.history(session, sam, date_from="yesterday")
    # Within the agent-visibility rule (issue #22): Alex took no part in either chat; he
    # sees Tom's, whose new request waits in the queue, not Eva's.
    assert [i["conversation_id"] for i in await inbox.history(session, alex)] == ["c1"]

    # Tom wrote again in the same chat and was escalated anew: the old request stays closed.
    await escalations.escalate(
        session, await session.get_one(Conversation, "c1"), EscalationReason.customer_request
    )
    await session.commit()
    with pytest.raises(Conflict) as open_again:
        await handoff.reopen(session, first.id, alex)
    assert open_again.value.code == "already_open"
    reopened = await handoff.reopen(session, second.id, alex)
    await session.commit()
    assert (reopened.status, reopened.claimed_by_id, reopened.resolved_at) == (
        EscalationStatus.claimed,
        alex.id,
        None,
    )
    assert (await session.get_one(Conversation, "c2")).status is ConversationStatus.with_agent
    assert await found() == ["c1"]
    with pytest.raises(Conflict) as still_open:
        await handoff.reopen(session, second.id, alex)
    assert still_open.value.code == "not_resolved"


# ---- 6. canned responses -----------------------------------------------------------------


async def test_canned_responses_are_validated_unique_and_filled(session: AsyncSession) -> None:
    _, _, ada = await _staff(session)
    saved = await inbox.save_canned(
        session,
        ada,
        {
            "shortcut": "Late",
            "title": "Late parcel",
            "text": "Hi {customer_name}, order {order_number} is on its way.",
        },
    )
    await session.commit()
    saved_id = saved.id
    assert saved.shortcut == "late"
    with pytest.raises(Conflict) as taken:
        await inbox.save_canned(session, ada, {"shortcut": "late", "title": "x", "text": "y"})
    assert (taken.value.code, str(taken.value)) == (
        "shortcut_taken",
        "The shortcut /late is taken.",
    )
    with pytest.raises(InvalidInput) as unknown:
        await inbox.save_canned(session, ada, {"shortcut": "x", "title": "x", "text": "{name}"})
    assert (
        str(unknown.value) == "Unknown placeholder {name}: use {customer_name} or {order_number}."
    )

    await inbox.save_canned(
        session,
        ada,
        {"shortcut": "late", "title": "Late", "text": "Sorry {customer_name}!"},
        saved_id,
    )
    await session.commit()
    assert [(c["shortcut"], c["text"]) for c in await inbox.list_canned(session)] == [
        ("late", "Sorry {customer_name}!")
    ]
    text = "Hi {customer_name}, order {order_number}."
    assert inbox.fill_placeholders(text, {"customer_name": "Tom", "order_number": None}) == (
        "Hi Tom, order {order_number}."
    )
    await inbox.delete_canned(session, ada, saved_id)
    await session.commit()
    assert await inbox.list_canned(session) == []
