"""Chat sessions: the server mints the conversation (Rasa sender) id and the browser's token."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import email_reply
from bot.domain.enums import ConversationStatus, EscalationStatus, MessageSender
from bot.domain.identity import CustomerClaims, TokenProblem
from bot.storage import repositories
from bot.storage.models import (
    Conversation,
    Customer,
    Escalation,
    Feedback,
    IdentityTokenUse,
    Lifecycle,
    Message,
    SurveyDispatch,
    utcnow,
)

TOKEN_BYTES = 32
# Expired single-use token records deleted per new record (they are only kept to refuse a
# replay, and an expired token is refused anyway).
PURGE_BATCH = 100
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
    # The identity token was valid but not applied (a single-use token used again).
    identity_problem: TokenProblem | None = None

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


def _may_resume(
    conversation: Conversation, customer: Customer | None, via_link: bool = False
) -> bool:
    """A customer never continues someone else's conversation, whatever token they send."""
    if conversation.status is ConversationStatus.closed:
        return False
    if customer is None:
        # Signed out on a shared computer: a conversation tied to a login stays private;
        # a resume link was emailed to the customer themselves (bot/domain/email_reply.py).
        return via_link or conversation.identified_by != BY_TOKEN
    return conversation.customer_id in (None, customer.id)


async def start_or_resume(
    session: AsyncSession,
    token: str | None,
    claims: CustomerClaims | None = None,
    *,
    link_secret: str | None = None,
) -> ChatSession:
    """Resume the conversation the token belongs to, or start a new one.

    The token is a bearer secret kept by the browser; the Rasa sender id is a separate
    random id that never leaves the server, so a visitor cannot pick someone else's.

    A single-use identity token (one with a `jti`) identifies one conversation: the first
    use records it; later it is only applied when the same customer comes back with the
    resume token of that conversation (the same tab reconnecting). Any other use is
    refused (`identity_problem`): the visitor continues anonymously, as with an invalid token.
    """
    via_link = False
    if token and link_secret is not None and email_reply.is_resume_link_token(token):
        # A signed resume link from an email reply (issue #20): the browser keeps it as
        # its resume token until it expires.
        linked = email_reply.conversation_of_link(link_secret, token, utcnow())
        resumed = await session.get(Conversation, linked) if linked else None
        via_link = resumed is not None
    else:
        resumed = await _by_token(session, token) if token else None
    problem = None
    single_use = claims is not None and claims.jti is not None
    if single_use and claims and await _use_known(session, claims, resumed) is False:
        claims, problem = None, TokenProblem.replayed
    customer = await customer_for_claims(session, claims) if claims else None
    conversation = (
        resumed if resumed is not None and _may_resume(resumed, customer, via_link) else None
    )
    handed: Conversation | None = None
    if conversation is None and customer is not None and link_secret is not None:
        # A signed-in customer in a fresh browser: the chat of theirs a person is on (or
        # answered lately) continues here, with the agent's reply in its history, instead of
        # a new chat that knows nothing of it. The browser gets a signed resume token (as an
        # emailed reply's link gives), so the other browser's token keeps working.
        handed = await _hand_over_to_continue(session, customer)
        if handed is not None:
            conversation = handed
            token = email_reply.resume_link_token(link_secret, handed.id, utcnow())
    if conversation is None:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        conversation = Conversation(id=secrets.token_hex(16), access_token_hash=_hash(token))
        session.add(conversation)
    if (
        single_use
        and claims
        and customer is not None
        and not await _record_use(session, claims, conversation, resumed)
    ):
        # Lost a race with another use of the same token: applied by the other one.
        customer, problem = None, TokenProblem.replayed
        if handed is not None or (conversation is resumed and not _may_resume(conversation, None)):
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
    return ChatSession(conversation, token, history, customer, problem)


async def _hand_over_to_continue(session: AsyncSession, customer: Customer) -> Conversation | None:
    """The customer's latest open chat that waits for or is with a person, or where an
    agent wrote in the last RESUME_LINK_DAYS; None for an anonymous customer."""
    if customer.is_anonymous:
        return None
    since = utcnow() - timedelta(days=email_reply.RESUME_LINK_DAYS)
    with_a_person = exists().where(
        Escalation.conversation_id == Conversation.id,
        Escalation.status != EscalationStatus.resolved,
    )
    agent_wrote = exists().where(
        Message.conversation_id == Conversation.id,
        Message.sender == MessageSender.agent,
        Message.created_at >= since,
    )
    found: Conversation | None = await session.scalar(
        select(Conversation)
        .where(
            Conversation.customer_id == customer.id,
            Conversation.status != ConversationStatus.closed,
            or_(with_a_person, agent_wrote),
        )
        .order_by(Conversation.updated_at.desc(), Conversation.created_at.desc())
        .limit(1)
    )
    return found


async def _by_token(session: AsyncSession, token: str) -> Conversation | None:
    found: Conversation | None = await session.scalar(
        select(Conversation).where(Conversation.access_token_hash == _hash(token))
    )
    return found


def _reuse_allowed(
    use: IdentityTokenUse, claims: CustomerClaims, resumed: Conversation | None
) -> bool:
    # The same tab reconnecting: it holds the resume token of the conversation the token
    # identified first (a signed token cannot name another customer, checked anyway).
    return (
        use.customer_external_id == claims.external_id
        and resumed is not None
        and use.conversation_id == resumed.id
    )


async def _use_known(
    session: AsyncSession, claims: CustomerClaims, resumed: Conversation | None
) -> bool | None:
    """None: the token was never used; True: used, and this is a reconnect; False: replay."""
    use = await session.scalar(select(IdentityTokenUse).where(IdentityTokenUse.jti == claims.jti))
    return None if use is None else _reuse_allowed(use, claims, resumed)


async def _record_use(
    session: AsyncSession,
    claims: CustomerClaims,
    conversation: Conversation,
    resumed: Conversation | None,
) -> bool:
    """Record the token's use for `conversation`, or accept a recorded reconnect; False
    when another use of the token got there first. Race-safe: the jti is the primary key,
    inserted in a SAVEPOINT so the caller's transaction survives a conflict."""
    assert claims.jti is not None
    use = await session.scalar(select(IdentityTokenUse).where(IdentityTokenUse.jti == claims.jti))
    if use is not None:
        if not _reuse_allowed(use, claims, resumed):
            return False
        # The reconnected conversation was closed and a new one started: it is theirs now.
        use.conversation_id = conversation.id
        return True
    now = utcnow()
    expired = select(IdentityTokenUse.jti).where(IdentityTokenUse.expires_at < now)
    await session.execute(
        delete(IdentityTokenUse)
        .where(IdentityTokenUse.jti.in_(expired.limit(PURGE_BATCH).scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    try:
        async with session.begin_nested():
            session.add(
                IdentityTokenUse(
                    jti=claims.jti,
                    customer_external_id=claims.external_id,
                    conversation_id=conversation.id,
                    expires_at=claims.expires_at or now,
                )
            )
    except IntegrityError:  # used at the same moment in another tab or by another visitor
        won = await session.scalar(
            select(IdentityTokenUse).where(IdentityTokenUse.jti == claims.jti)
        )
        return won is not None and _reuse_allowed(won, claims, resumed)
    return True


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
