"""Human handoff: the escalation queue, claiming, agent replies, notes, transfer, resolve.

Claiming is one conditional UPDATE (status waiting → claimed), so when two agents click at
once exactly one row changes and the other agent is told who won. Every staff action is
written to the AuditLog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import audit, closed_loop, inbox, returns, surveys, texts
from bot.domain.enums import ConversationStatus, EscalationStatus, MessageSender, StaffRole
from bot.domain.errors import Conflict, InvalidInput, NotFound
from bot.domain.views import escalation_json, iso, message_json, priority_label, staff_names
from bot.storage import repositories
from bot.storage.models import (
    Conversation,
    Customer,
    Escalation,
    Feedback,
    Lifecycle,
    Message,
    Order,
    StaffNote,
    StaffUser,
    Subscription,
    utcnow,
)

MAX_TEXT_CHARS = 4000
QUEUE_FILTERS = ("all", "mine", "unassigned")
# How long a claim may sit without the holder writing before a colleague may take it over.
DEFAULT_CLAIM_IDLE_MINUTES = 15


@dataclass(frozen=True)
class Handback:
    conversation_id: str
    escalation: Escalation


def _text(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("Please type a message.")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInput(f"Messages are limited to {MAX_TEXT_CHARS} characters.")
    return text.strip()


async def queue(
    session: AsyncSession, staff: StaffUser, which: str = "all", aging_minutes: int = 15
) -> list[dict[str, Any]]:
    """Open escalations by priority (highest first), then age (oldest first).

    An escalation left unclaimed for more than `aging_minutes` is raised one level and
    marked overdue, so a long wait is not buried under newer urgent ones forever; a
    follow-up past its due time is marked overdue too. `last_message` is the customer's
    last message (not the bot's or a system note); `unread` counts the customer's
    messages `staff` has not read in the console (bot/domain/inbox.py).
    """
    if which not in QUEUE_FILTERS:
        raise InvalidInput(f"filter must be one of {', '.join(QUEUE_FILTERS)}")
    query = select(Escalation).where(Escalation.status != EscalationStatus.resolved)
    if which == "mine":
        query = query.where(Escalation.claimed_by_id == staff.id)
    elif which == "unassigned":
        query = query.where(Escalation.status == EscalationStatus.waiting)
    escalations = (
        await session.scalars(query.order_by(Escalation.priority.desc(), Escalation.created_at))
    ).all()
    names = await staff_names(session)
    now = utcnow()
    items = []
    overdue_after = timedelta(minutes=aging_minutes)
    unread = await inbox.unread_counts(
        session, staff.id, [e.conversation_id for e in escalations if e.conversation_id]
    )
    for escalation in escalations:
        customer = (
            await session.get(Customer, escalation.customer_id) if escalation.customer_id else None
        )
        last = await _last_message(session, escalation.conversation_id)
        stage = await _current_stage(session, escalation.conversation_id, customer)
        aged = (
            escalation.status is EscalationStatus.waiting
            and now - escalation.created_at > overdue_after
        )
        priority = escalation.priority + (1 if aged else 0)
        past_due = escalation.due_at is not None and now > escalation.due_at
        items.append(
            {
                **escalation_json(escalation, names),
                "priority": priority,
                "priority_label": priority_label(priority),
                "overdue": aged or past_due,
                "unread": unread.get(escalation.conversation_id or "", 0),
                "escalation_id": escalation.id,
                "customer": _customer_json(customer),
                "stage": stage,
                "last_message": message_json(last) if last else None,
                "waiting_seconds": int((now - escalation.created_at).total_seconds()),
            }
        )
    items.sort(key=lambda item: (-item["priority"], item["created_at"]))
    return items


async def _last_message(session: AsyncSession, conversation_id: str | None) -> Message | None:
    if conversation_id is None:
        return None
    message: Message | None = await session.scalar(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.sender == MessageSender.customer)
        .order_by(Message.id.desc())
        .limit(1)
    )
    return message


async def _current_stage(
    session: AsyncSession, conversation_id: str | None, customer: Customer | None
) -> str | None:
    conversation = await session.get(Conversation, conversation_id) if conversation_id else None
    if conversation is not None and conversation.order_id is not None:
        lifecycle = await session.scalar(
            select(Lifecycle).where(Lifecycle.order_id == conversation.order_id)
        )
        if lifecycle is not None:
            return lifecycle.stage.value
    if customer is None:
        return None
    lifecycle = await session.scalar(
        select(Lifecycle)
        .where(Lifecycle.customer_id == customer.id, Lifecycle.closed_at.is_(None))
        .order_by(Lifecycle.opened_at.desc())
        .limit(1)
    )
    return lifecycle.stage.value if lifecycle else None


def _customer_json(customer: Customer | None) -> dict[str, Any] | None:
    if customer is None or customer.is_anonymous:
        return None
    return {
        "id": customer.id,
        "name": customer.name,
        "email": customer.email,
        "external_id": customer.external_id,
        "acquisition_source": customer.acquisition_source.value
        if customer.acquisition_source
        else None,
    }


def note_json(note: StaffNote, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": note.id,
        "author": names.get(note.staff_user_id, ""),
        "text": note.text,
        "time": iso(note.created_at),
    }


async def _escalation(session: AsyncSession, escalation_id: int) -> Escalation:
    escalation = await session.get(Escalation, escalation_id)
    if escalation is None:
        raise NotFound("No such escalation.")
    return escalation


def joined_note(staff: StaffUser) -> str:
    """Told to a customer the bot was helping when an agent takes the chat (SPEC §5)."""
    return texts.render("utter_handoff_agent_joined", agent=staff.display_name)


async def claim(session: AsyncSession, escalation_id: int, staff: StaffUser) -> Escalation:
    await _escalation(session, escalation_id)
    now = utcnow()
    result = await session.execute(
        update(Escalation)
        .where(Escalation.id == escalation_id, Escalation.status == EscalationStatus.waiting)
        .values(status=EscalationStatus.claimed, claimed_by_id=staff.id, claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    escalation = await _escalation(session, escalation_id)
    await session.refresh(escalation)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        names = await staff_names(session)
        who = names.get(escalation.claimed_by_id or 0, "Someone")
        state = (
            "resolved" if escalation.status is EscalationStatus.resolved else f"claimed by {who}"
        )
        raise Conflict(f"This conversation was already {state}.", code="already_claimed")
    if escalation.conversation_id:
        conversation = await session.get(Conversation, escalation.conversation_id)
        if conversation is not None:
            conversation.status = ConversationStatus.with_agent
    session.add(audit.by_staff(staff.id, "claim", "escalation", str(escalation.id)))
    await session.flush()
    return escalation


async def _open_escalation_for(session: AsyncSession, conversation_id: str) -> Escalation:
    escalation = await repositories.open_escalation(session, conversation_id)
    if escalation is None:
        raise Conflict("This conversation has no open escalation.", code="not_escalated")
    return escalation


def _must_hold(escalation: Escalation, staff: StaffUser, doing: str = "replying") -> None:
    if escalation.claimed_by_id != staff.id and staff.role is not StaffRole.admin:
        if escalation.status is EscalationStatus.claimed and doing != "replying":
            # Someone else has it (transferred to them, say): say who and what to do.
            raise Conflict(
                f"A colleague has this conversation: take it over before {doing}.",
                code="not_claimed",
            )
        raise Conflict("Claim this conversation before replying.", code="not_claimed")


async def agent_reply(
    session: AsyncSession, conversation_id: str, staff: StaffUser, text: Any
) -> Message:
    body = _text(text)
    escalation = await _open_escalation_for(session, conversation_id)
    _must_hold(escalation, staff)
    message = await repositories.add_message(
        session, conversation_id, MessageSender.agent, body, author=staff.display_name
    )
    session.add(
        audit.by_staff(
            staff.id, "reply", "conversation", conversation_id, {"message_id": message.id}
        )
    )
    await session.flush()
    return message


async def add_note(
    session: AsyncSession, conversation_id: str, staff: StaffUser, text: Any
) -> StaffNote:
    if await session.get(Conversation, conversation_id) is None:
        raise NotFound("No such conversation.")
    note = StaffNote(conversation_id=conversation_id, staff_user_id=staff.id, text=_text(text))
    session.add(note)
    await session.flush()
    session.add(
        audit.by_staff(staff.id, "note", "conversation", conversation_id, {"note_id": note.id})
    )
    return note


async def transfer(
    session: AsyncSession,
    escalation_id: int,
    staff: StaffUser,
    to_user_id: Any,
    *,
    online_ids: set[int] | None = None,
    force: bool = False,
) -> Escalation:
    """Hand the escalation to another agent (the holder or an admin may). With `online_ids`
    (the console's presence), a colleague who is not online is refused with
    `agent_offline` unless `force`: they would not see it until they sign in."""
    escalation = await _escalation(session, escalation_id)
    if escalation.status is EscalationStatus.resolved:
        raise Conflict("This conversation is already resolved.", code="resolved")
    target = (
        await session.get(StaffUser, to_user_id)
        if isinstance(to_user_id, int) and not isinstance(to_user_id, bool)
        else None
    )
    if target is None or not target.is_active or target.role is StaffRole.cx_manager:
        raise InvalidInput("Choose an active agent to transfer to.")
    if escalation.status is EscalationStatus.claimed:
        _must_hold(escalation, staff, "transferring it")
    if online_ids is not None and target.id not in online_ids and not force:
        raise Conflict(
            f"{target.display_name} is offline: they will not see this conversation until "
            "they sign in. Transfer anyway?",
            code="agent_offline",
        )
    escalation.status = EscalationStatus.claimed
    escalation.claimed_by_id = target.id
    escalation.claimed_at = utcnow()
    if escalation.conversation_id:
        conversation = await session.get(Conversation, escalation.conversation_id)
        if conversation is not None:
            conversation.status = ConversationStatus.with_agent
    session.add(
        audit.by_staff(staff.id, "transfer", "escalation", str(escalation.id), {"to": target.id})
    )
    await session.flush()
    return escalation


def _set_conversation_status(conversation: Conversation | None, status: ConversationStatus) -> None:
    if conversation is not None and conversation.status is not ConversationStatus.closed:
        conversation.status = status


async def release(session: AsyncSession, escalation_id: int, staff: StaffUser) -> Escalation:
    """Give a claimed conversation back to the queue (its holder or an admin): it waits
    for the next agent again; the bot stays paused."""
    escalation = await _escalation(session, escalation_id)
    if escalation.status is not EscalationStatus.claimed:
        raise Conflict("This conversation is not claimed.", code="not_claimed")
    _must_hold(escalation, staff, "releasing it")
    previous = escalation.claimed_by_id
    escalation.status = EscalationStatus.waiting
    escalation.claimed_by_id = None
    escalation.claimed_at = None
    if escalation.conversation_id:
        conversation = await session.get(Conversation, escalation.conversation_id)
        _set_conversation_status(conversation, ConversationStatus.waiting_for_agent)
    session.add(
        audit.by_staff(staff.id, "release", "escalation", str(escalation.id), {"holder": previous})
    )
    await session.flush()
    return escalation


async def last_activity(session: AsyncSession, escalation: Escalation) -> datetime | None:
    """When the holder last acted on the claim: the claim itself or the last agent
    message in the conversation since."""
    latest = escalation.claimed_at
    if escalation.conversation_id:
        replied = await session.scalar(
            select(func.max(Message.created_at)).where(
                Message.conversation_id == escalation.conversation_id,
                Message.sender == MessageSender.agent,
            )
        )
        if replied is not None and (latest is None or replied > latest):
            latest = replied
    return latest


async def take_over(
    session: AsyncSession,
    escalation_id: int,
    staff: StaffUser,
    *,
    online_ids: set[int],
    idle_minutes: int = DEFAULT_CLAIM_IDLE_MINUTES,
) -> Escalation:
    """Claim a conversation a colleague holds. Allowed to an admin (reassigns any), and to
    any agent when the holder is not online or has not written for `idle_minutes` (a chat
    transferred to someone who is away is not stuck). One conditional UPDATE: of two
    agents taking over at once, one wins."""
    escalation = await _escalation(session, escalation_id)
    if escalation.status is not EscalationStatus.claimed:
        raise Conflict("Nobody has claimed this conversation: claim it.", code="not_claimed")
    holder_id = escalation.claimed_by_id
    if holder_id == staff.id:
        raise Conflict("You already have this conversation.", code="already_yours")
    names = await staff_names(session)
    holder = names.get(holder_id or 0, "A colleague")
    if staff.role is not StaffRole.admin and holder_id in online_ids:
        active = await last_activity(session, escalation)
        idle_for = utcnow() - active if active is not None else None
        if idle_for is not None and idle_for < timedelta(minutes=idle_minutes):
            wait = max(1, int((timedelta(minutes=idle_minutes) - idle_for).total_seconds() // 60))
            raise Conflict(
                f"{holder} is online and active in this conversation. You can take it over "
                f"if they stay idle for {wait} more minute{'s' if wait != 1 else ''}, "
                "or ask an admin to reassign it.",
                code="claim_active",
            )
    now = utcnow()
    result = await session.execute(
        update(Escalation)
        .where(
            Escalation.id == escalation_id,
            Escalation.status == EscalationStatus.claimed,
            Escalation.claimed_by_id == holder_id,
        )
        .values(claimed_by_id=staff.id, claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(escalation)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("This conversation changed hands a moment ago.", code="already_claimed")
    session.add(
        audit.by_staff(
            staff.id, "take_over", "escalation", str(escalation.id), {"holder": holder_id}
        )
    )
    await session.flush()
    return escalation


async def reopen(session: AsyncSession, escalation_id: int, staff: StaffUser) -> Escalation:
    """Reopen a resolved chat: the latest escalation of its conversation is claimed by
    `staff` again and the chat is with them (the caller pauses the bot)."""
    escalation = await _escalation(session, escalation_id)
    if escalation.status is not EscalationStatus.resolved:
        raise Conflict("This conversation is still open.", code="not_resolved")
    if escalation.conversation_id is None:
        raise Conflict("A follow-up without a chat cannot be reopened.", code="no_chat")
    conversation = await session.get(Conversation, escalation.conversation_id)
    if conversation is None or conversation.status is ConversationStatus.closed:
        raise Conflict("This conversation is closed.", code="closed")
    if await repositories.open_escalation(session, escalation.conversation_id) is not None:
        raise Conflict(
            "This conversation has been escalated again: open it from the queue.",
            code="already_open",
        )
    latest = await session.scalar(
        select(Escalation.id)
        .where(Escalation.conversation_id == escalation.conversation_id)
        .order_by(Escalation.created_at.desc(), Escalation.id.desc())
        .limit(1)
    )
    if latest != escalation.id:
        raise Conflict("Reopen the conversation's latest request instead.", code="not_latest")
    escalation.status = EscalationStatus.claimed
    escalation.claimed_by_id = staff.id
    escalation.claimed_at = utcnow()
    escalation.resolved_at = None
    escalation.back_with_bot_at = None
    conversation.status = ConversationStatus.with_agent
    session.add(audit.by_staff(staff.id, "reopen", "escalation", str(escalation.id)))
    await session.flush()
    return escalation


async def resolve(session: AsyncSession, escalation_id: int, staff: StaffUser) -> Handback:
    escalation = await _escalation(session, escalation_id)
    if escalation.status is EscalationStatus.resolved:
        raise Conflict("This conversation is already resolved.", code="resolved")
    if escalation.status is EscalationStatus.claimed:
        _must_hold(escalation, staff, "resolving it")
    escalation.status = EscalationStatus.resolved
    escalation.resolved_at = utcnow()
    if escalation.claimed_by_id is None:
        escalation.claimed_by_id, escalation.claimed_at = staff.id, escalation.resolved_at
    conversation_id = escalation.conversation_id or ""
    conversation = await session.get(Conversation, conversation_id)
    if conversation is not None:
        conversation.status = ConversationStatus.bot
    # A follow-up without a chat gets its support survey in the customer's next chat.
    await closed_loop.after_resolve(session, escalation)
    session.add(audit.by_staff(staff.id, "resolve", "escalation", str(escalation.id)))
    await session.flush()
    return Handback(conversation_id, escalation)


async def survey_after_resolve(
    session: AsyncSession, conversation: Conversation, quiet_hours: int
) -> bool:
    """Whether resolving this chat now starts the support survey in it: not when the
    transactional rule holds it back (surveys.surveyed_recently; the customer then hears
    `closing_note` instead), so the console promises only what happens."""
    if conversation.customer_id is None:
        return True  # feedback from an anonymous visitor goes to a customer made for it
    return not await surveys.surveyed_recently(
        session, conversation.customer_id, conversation.id, quiet_hours
    )


def closing_note() -> str:
    """Told to the customer after Resolve when the bot asks no survey."""
    return texts.render("utter_handoff_resolved_closing")


async def conversation_detail(session: AsyncSession, conversation_id: str) -> dict[str, Any]:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound("No such conversation.")
    names = await staff_names(session)
    escalation = await session.scalar(
        select(Escalation)
        .where(Escalation.conversation_id == conversation_id)
        .order_by(Escalation.created_at.desc())
        .limit(1)
    )
    messages = await repositories.transcript(session, conversation_id)
    notes = (
        await session.scalars(
            select(StaffNote)
            .where(StaffNote.conversation_id == conversation_id)
            .order_by(StaffNote.id)
        )
    ).all()
    customer = (
        await session.get(Customer, conversation.customer_id) if conversation.customer_id else None
    )
    return {
        "conversation": {"id": conversation.id, "status": conversation.status.value},
        "escalation": escalation_json(escalation, names) if escalation else None,
        "messages": [message_json(m) for m in messages],
        "notes": [note_json(n, names) for n in notes],
        "customer": await _customer_panel(session, customer),
    }


async def _customer_panel(
    session: AsyncSession, customer: Customer | None
) -> dict[str, Any] | None:
    summary = _customer_json(customer)
    if summary is None or customer is None:
        return None
    orders = (
        await session.scalars(
            select(Order).where(Order.customer_id == customer.id).order_by(Order.placed_at.desc())
        )
    ).all()
    numbers = {o.id: o.number for o in orders}
    lifecycles = (
        await session.scalars(
            select(Lifecycle)
            .where(Lifecycle.customer_id == customer.id)
            .order_by(Lifecycle.opened_at.desc())
        )
    ).all()
    subscriptions = (
        await session.scalars(select(Subscription).where(Subscription.customer_id == customer.id))
    ).all()
    feedback = (
        await session.scalars(
            select(Feedback)
            .where(Feedback.customer_id == customer.id)
            .order_by(Feedback.created_at.desc())
            .limit(50)
        )
    ).all()
    escalations = (
        await session.scalars(
            select(Escalation)
            .where(Escalation.customer_id == customer.id)
            .order_by(Escalation.created_at.desc())
        )
    ).all()
    return {
        **summary,
        "lifecycles": [
            {
                "id": lc.id,
                "kind": lc.kind.value,
                "stage": lc.stage.value,
                "opened_at": iso(lc.opened_at),
                "closed_at": iso(lc.closed_at),
                "order_number": numbers.get(lc.order_id or 0),
            }
            for lc in lifecycles
        ],
        "orders": [
            {
                "number": o.number,
                "status": o.status.value,
                "total": str(o.total),
                "currency": o.currency,
                "placed_at": iso(o.placed_at),
            }
            for o in orders
        ],
        "subscriptions": [{"plan": s.plan, "status": s.status.value} for s in subscriptions],
        # item-level returns (issue #19): what, why, refund or replacement
        "returns": await returns.panel(session, customer.id),
        "feedback": [
            {
                "kind": f.kind.value,
                "score": f.score,
                "text": f.text,
                "stage": f.stage.value if f.stage else None,
                "channel": f.channel.value,
                "time": iso(f.created_at),
            }
            for f in feedback
        ],
        "escalations": [
            {
                "id": e.id,
                "reason": e.reason.value,
                "status": e.status.value,
                "created_at": iso(e.created_at),
            }
            for e in escalations
        ],
    }


async def staff_directory(session: AsyncSession, online_ids: set[int]) -> list[dict[str, Any]]:
    users = (
        await session.scalars(
            select(StaffUser)
            .where(StaffUser.is_active.is_(True), StaffUser.role != StaffRole.cx_manager)
            .order_by(StaffUser.display_name)
        )
    ).all()
    return [
        {
            "id": u.id,
            "display_name": u.display_name,
            "role": u.role.value,
            "online": u.id in online_ids,
        }
        for u in users
    ]


async def open_count(session: AsyncSession) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Escalation)
            .where(Escalation.status != EscalationStatus.resolved)
        )
        or 0
    )
