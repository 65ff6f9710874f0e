"""Chat sessions: the server mints the conversation (Rasa sender) id and the browser's token."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.identity import CustomerClaims
from bot.storage import repositories
from bot.storage.models import (
    Conversation,
    ConversationStatus,
    Customer,
    Feedback,
    Lifecycle,
    Message,
    SurveyDispatch,
    utcnow,
)

TOKEN_BYTES = 32
BY_TOKEN = "token"
BY_ORDER = "order"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ChatSession:
    conversation: Conversation
    token: str
    history: Sequence[Message]
    customer: Customer | None

    @property
    def verified(self) -> bool:
        return self.customer is not None and not self.customer.is_anonymous


async def customer_for_claims(session: AsyncSession, claims: CustomerClaims) -> Customer:
    """The shop's customer named by a valid identity token; created on first contact."""
    customer = await session.scalar(
        select(Customer).where(Customer.external_id == claims.external_id)
    )
    if customer is not None:
        return customer
    customer = Customer(external_id=claims.external_id, email=claims.email, name=claims.name)
    try:
        async with session.begin_nested():
            session.add(customer)
    except IntegrityError:  # created concurrently by another tab
        found = await session.scalar(
            select(Customer).where(Customer.external_id == claims.external_id)
        )
        assert found is not None
        return found
    return customer


def _may_resume(conversation: Conversation, customer: Customer | None) -> bool:
    """A customer never continues someone else's conversation, whatever token they send."""
    if conversation.status is ConversationStatus.closed:
        return False
    if customer is None:
        # Signed out on a shared computer: a conversation tied to a login stays private.
        return conversation.identified_by != BY_TOKEN
    return conversation.customer_id in (None, customer.id)


async def start_or_resume(
    session: AsyncSession, token: str | None, claims: CustomerClaims | None = None
) -> ChatSession:
    """Resume the conversation the token belongs to, or start a new one.

    The token is a bearer secret kept by the browser; the Rasa sender id is a separate
    random id that never leaves the server, so a visitor cannot pick someone else's.
    """
    customer = await customer_for_claims(session, claims) if claims else None
    conversation = None
    if token:
        conversation = await session.scalar(
            select(Conversation).where(Conversation.access_token_hash == _hash(token))
        )
        if conversation is not None and not _may_resume(conversation, customer):
            conversation = None
    if conversation is None:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        conversation = Conversation(id=secrets.token_hex(16), access_token_hash=_hash(token))
        session.add(conversation)
    assert token is not None
    if customer is not None and conversation.customer_id is None:
        conversation.customer_id = customer.id
        conversation.identified_by = BY_TOKEN
    await session.flush()
    if customer is None and conversation.customer_id is not None:
        customer = await session.get(Customer, conversation.customer_id)
    history = await repositories.transcript(session, conversation.id)
    return ChatSession(conversation, token, history, customer)


def bot_may_answer(conversation: Conversation) -> bool:
    """While a person is (about to be) handling the chat, the bot stays silent."""
    return conversation.status is ConversationStatus.bot


async def is_anonymous(session: AsyncSession, customer_id: int | None) -> bool:
    """Whether the id is a stand-in customer made for an unidentified chat's feedback."""
    if customer_id is None:
        return False
    customer = await session.get(Customer, customer_id)
    return customer is not None and customer.is_anonymous


async def merge_anonymous(
    session: AsyncSession, anonymous_id: int, customer_id: int, lifecycle: Lifecycle
) -> None:
    """The chat's visitor proved who they are: what they said while anonymous becomes the
    customer's, on `lifecycle` (the one the conversation is about) at its stage. The
    stand-in's own lifecycles close as "merged"; the stand-in row stays, empty."""
    stand_in_lifecycles = select(Lifecycle.id).where(Lifecycle.customer_id == anonymous_id)
    await session.execute(
        update(Feedback)
        .where(Feedback.customer_id == anonymous_id)
        .values(customer_id=customer_id, lifecycle_id=lifecycle.id, stage=lifecycle.stage)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(SurveyDispatch)
        .where(SurveyDispatch.lifecycle_id.in_(stand_in_lifecycles))
        .values(customer_id=customer_id, lifecycle_id=lifecycle.id)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Lifecycle)
        .where(Lifecycle.customer_id == anonymous_id, Lifecycle.closed_at.is_(None))
        .values(closed_at=utcnow(), close_reason="merged")
        .execution_options(synchronize_session=False)
    )
