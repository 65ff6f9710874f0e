"""Which conversations a staff member may read (issue #22, docs/security.md §3).

* CX managers and admins: every conversation.
* Agents: their work, as help desks show it (Chatwoot, Zendesk):
  - the queue: conversations with an escalation waiting for someone;
  - what they claimed or were transferred (an escalation held by them now, or ever
    claimed, taken over or transferred to them: the audit log says so);
  - conversations they took part in (a reply, a note, a claim, a release, a resolve...);
  - the past conversations of a customer whose chat they hold now or whose escalation
    waits in the queue (the contact's history).
  Anything else (a chat that never reached a person, another agent's past work with other
  customers) is not theirs: the console answers 404 as for an unknown id, and feedback rows
  of such conversations are left out of what they read elsewhere (`/api/insights/{id}`).

One SQL condition (`readable_condition`) serves single checks and lists alike.
Photos of damaged items (bot/web/photos.py, issue #19) follow the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, String, and_, cast, exists, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import audit
from bot.domain.enums import EscalationStatus, StaffRole
from bot.storage.models import AuditLog, Conversation, Escalation, StaffNote, StaffUser

# Roles that read every conversation.
SEE_EVERYTHING = frozenset({StaffRole.cx_manager, StaffRole.admin})


def sees_everything(role: StaffRole) -> bool:
    return role in SEE_EVERYTHING


def readable_condition(role: StaffRole, user_id: int | None) -> ColumnElement[bool]:
    """A condition on `Conversation` rows: true for the conversations a staff member of
    this role and id may read (an agent's API token, which is nobody: none)."""
    if sees_everything(role):
        return true()
    if user_id is None or role is StaffRole.bot_trainer:
        # Bot trainers (issue #24) read customer messages only in the review inbox, with
        # the context it shows; no conversation of the console is theirs.
        return false()
    actor = audit.staff_actor(user_id)
    waiting_or_held = or_(
        Escalation.status == EscalationStatus.waiting,
        and_(Escalation.status == EscalationStatus.claimed, Escalation.claimed_by_id == user_id),
    )
    # Escalations this agent acted on or was handed (claim, transfer to them, take-over...).
    acted_on = select(AuditLog.target_id).where(
        AuditLog.target_type == "escalation",
        or_(AuditLog.actor == actor, AuditLog.details["to"].as_integer() == user_id),
    )
    theirs = select(Escalation.conversation_id).where(
        Escalation.conversation_id.is_not(None),
        or_(
            Escalation.status == EscalationStatus.waiting,
            Escalation.claimed_by_id == user_id,
            cast(Escalation.id, String).in_(acted_on),
        ),
    )
    took_part = select(AuditLog.target_id).where(
        AuditLog.actor == actor, AuditLog.target_type == "conversation"
    )
    noted = select(StaffNote.conversation_id).where(StaffNote.staff_user_id == user_id)
    # Customers whose chat the agent holds or that wait in the queue: their history.
    held = Conversation.__table__.alias("held")
    customers_by_chat = (
        select(held.c.customer_id)
        .join(Escalation, Escalation.conversation_id == held.c.id)
        .where(held.c.customer_id.is_not(None), waiting_or_held)
    )
    customers_direct = select(Escalation.customer_id).where(
        Escalation.customer_id.is_not(None), waiting_or_held
    )
    return or_(
        Conversation.id.in_(theirs),
        Conversation.id.in_(took_part),
        Conversation.id.in_(noted),
        and_(
            Conversation.customer_id.is_not(None),
            or_(
                Conversation.customer_id.in_(customers_by_chat),
                Conversation.customer_id.in_(customers_direct),
            ),
        ),
    )


async def may_read_conversation(
    session: AsyncSession, user: StaffUser, conversation_id: str
) -> bool:
    """Whether `user` may read this conversation (False for an unknown id too)."""
    condition = readable_condition(user.role, user.id)
    found = await session.scalar(
        select(exists().where(Conversation.id == conversation_id, condition))
    )
    return bool(found)


async def readable_conversations(
    session: AsyncSession,
    role: StaffRole,
    user_id: int | None,
    conversation_ids: Iterable[str | None],
) -> set[str]:
    """The ids among `conversation_ids` that this staff member may read."""
    wanted = {c for c in conversation_ids if c}
    if not wanted:
        return set()
    rows = await session.scalars(
        select(Conversation.id).where(
            Conversation.id.in_(wanted), readable_condition(role, user_id)
        )
    )
    return set(rows)
