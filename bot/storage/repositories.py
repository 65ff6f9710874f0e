"""Queries shared by the actions, the web service and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from bot.domain.enums import ConversationStatus, EscalationStatus, MessageSender, SubscriptionStatus
from bot.storage.models import (
    Conversation,
    Customer,
    Escalation,
    Feedback,
    Message,
    Order,
    Subscription,
    utcnow,
)


def normalise_order_number(raw: str) -> str:
    """'#10023', 'a10023', ' A10023 ' → 'A10023'."""
    cleaned = raw.strip().lstrip("#").upper().replace(" ", "")
    return cleaned if cleaned.startswith("A") else f"A{cleaned}"


async def order_by_number(session: AsyncSession, number: str) -> Order | None:
    order: Order | None = await session.scalar(
        select(Order)
        .where(Order.number == normalise_order_number(number))
        .options(selectinload(Order.items), selectinload(Order.customer))
    )
    return order


async def order_by_id(session: AsyncSession, order_id: int) -> Order | None:
    order: Order | None = await session.scalar(
        select(Order).where(Order.id == order_id).options(selectinload(Order.items))
    )
    return order


async def latest_order(session: AsyncSession, customer_id: int) -> Order | None:
    order: Order | None = await session.scalar(
        select(Order)
        .where(Order.customer_id == customer_id)
        .options(selectinload(Order.items))
        .order_by(Order.placed_at.desc())
        .limit(1)
    )
    return order


async def customer_orders(session: AsyncSession, customer_id: int) -> list[Order]:
    """All of a customer's orders with their items, newest first."""
    rows = await session.scalars(
        select(Order)
        .where(Order.customer_id == customer_id)
        .options(selectinload(Order.items))
        .order_by(Order.placed_at.desc(), Order.id.desc())
    )
    return list(rows)


async def customer_subscription(session: AsyncSession, customer_id: int) -> Subscription | None:
    """The customer's live subscription (active first, then paused)."""
    rows = await session.scalars(
        select(Subscription)
        .where(
            Subscription.customer_id == customer_id,
            Subscription.status != SubscriptionStatus.cancelled,
        )
        .order_by(Subscription.status, Subscription.started_at.desc())
    )
    return rows.first()


async def latest_subscription(session: AsyncSession, customer_id: int) -> Subscription | None:
    """The customer's live subscription, else the one they cancelled last."""
    live = await customer_subscription(session, customer_id)
    if live is not None:
        return live
    rows = await session.scalars(
        select(Subscription)
        .where(Subscription.customer_id == customer_id)
        .order_by(Subscription.cancelled_at.desc().nulls_last(), Subscription.id.desc())
    )
    return rows.first()


async def get_or_create_conversation(session: AsyncSession, conversation_id: str) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        conversation = Conversation(id=conversation_id, status=ConversationStatus.bot)
        session.add(conversation)
        await session.flush()
    return conversation


async def conversation_customer(
    session: AsyncSession, conversation: Conversation
) -> Customer | None:
    if conversation.customer_id is None:
        return None
    return await session.get(Customer, conversation.customer_id)


async def add_message(
    session: AsyncSession,
    conversation_id: str,
    sender: MessageSender,
    text: str,
    buttons: list[dict[str, str]] | None = None,
    *,
    client_message_id: str | None = None,
    author: str | None = None,
    cards: list[dict[str, Any]] | None = None,
) -> Message:
    message = Message(
        conversation_id=conversation_id,
        sender=sender,
        text=text,
        buttons=buttons,
        cards=cards,
        client_message_id=client_message_id,
        author=author,
    )
    session.add(message)
    await session.flush()
    return message


async def add_messages(
    session: AsyncSession,
    conversation_id: str,
    sender: MessageSender,
    texts: Sequence[tuple[str, list[dict[str, str]] | None]],
    cards: Sequence[list[dict[str, Any]] | None] = (),
) -> list[Message]:
    """Several messages (a bot turn's replies) in one INSERT statement, in order; `cards`:
    the order cards of each (by position; missing: none).

    The ORM would send one INSERT per row on SQLite (it cannot tell there which RETURNING
    row belongs to which object); a Core executemany becomes one multi-row INSERT (cached
    compiled form). Its rows take their ids in row order (SQLite: each one above the
    table's largest rowid, under the write lock; PostgreSQL: the sequence, row by row), so
    the returned ids, sorted, are the rows' ids.
    """
    if not texts:
        return []
    now = utcnow()
    shown = list(cards) + [None] * (len(texts) - len(cards))
    rows = [
        {
            "conversation_id": conversation_id,
            "sender": sender,
            "text": text,
            "buttons": buttons,
            "cards": card_list,
            "client_message_id": None,
            "author": None,
            "created_at": now,
        }
        for (text, buttons), card_list in zip(texts, shown, strict=True)
    ]
    table = Message.__table__
    assert isinstance(table, Table)
    result = await session.execute(insert(table).returning(table.c.id), rows)
    ids = sorted(result.scalars().all())
    return [Message(id=message_id, **row) for message_id, row in zip(ids, rows, strict=True)]


async def message_by_client_id(
    session: AsyncSession, conversation_id: str, client_message_id: str
) -> Message | None:
    message: Message | None = await session.scalar(
        select(Message).where(
            Message.conversation_id == conversation_id,
            Message.client_message_id == client_message_id,
        )
    )
    return message


async def offered_payload(session: AsyncSession, conversation_id: str, payload: str) -> bool:
    """Whether a button the bot offered in this conversation carries `payload`."""
    offered = await session.scalars(
        select(Message.buttons).where(
            Message.conversation_id == conversation_id, Message.sender == MessageSender.bot
        )
    )
    return any(
        isinstance(button, dict) and button.get("payload") == payload
        for buttons in offered
        if isinstance(buttons, list)
        for button in buttons
    )


async def transcript(session: AsyncSession, conversation_id: str) -> Sequence[Message]:
    rows = await session.scalars(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
    )
    return rows.all()


async def open_escalation(session: AsyncSession, conversation_id: str) -> Escalation | None:
    escalation: Escalation | None = await session.scalar(
        select(Escalation).where(
            Escalation.conversation_id == conversation_id,
            Escalation.status != EscalationStatus.resolved,
        )
    )
    return escalation


async def feedback_for_conversation(
    session: AsyncSession, conversation_id: str
) -> Sequence[Feedback]:
    rows = await session.scalars(
        select(Feedback).where(Feedback.conversation_id == conversation_id).order_by(Feedback.id)
    )
    return rows.all()


async def count(session: AsyncSession, model: type[object]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def feedback_for_dispatch(session: AsyncSession, dispatch_id: int) -> Sequence[Feedback]:
    rows = await session.scalars(
        select(Feedback).where(Feedback.survey_dispatch_id == dispatch_id).order_by(Feedback.id)
    )
    return rows.all()
