"""Email reply when the customer has left the chat (issue #20; docs/email.md).

An agent's line to a customer who has no chat open is also emailed, when the customer
left an email in the chat (the escalation's contact email) or is a known customer with
one. The email carries a signed resume link: opened, the chat page continues the same
conversation, so the customer's answer lands where the agent is.

Resume link tokens: ``rl1.<conversation id>.<expiry, unix seconds>.<signature>``, the
signature an HMAC-SHA256 over the first three parts with a key derived from
WIDGET_SECRET for this purpose only. The chat's `hello` accepts one instead of a resume
token (bot/domain/conversations.py); the page keeps it as its token until it expires.

The functions flush nothing and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import texts
from bot.domain.enums import MessageSender
from bot.storage.models import Conversation, Customer, Escalation, Message

LINK_PREFIX = "rl1"
RESUME_LINK_DAYS = 7
_CONVERSATION_ID = re.compile(r"^[0-9a-f]{1,64}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _key(secret: str) -> bytes:
    # Domain-separated from the identity tokens signed with the same secret.
    return hashlib.sha256(b"resume-link\x00" + secret.encode()).digest()


def _signature(secret: str, payload: str) -> str:
    digest = hmac.new(_key(secret), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def resume_link_token(
    secret: str, conversation_id: str, now: datetime, days: int = RESUME_LINK_DAYS
) -> str:
    expires = int(now.timestamp()) + days * 86400
    payload = f"{LINK_PREFIX}.{conversation_id}.{expires}"
    return f"{payload}.{_signature(secret, payload)}"


def is_resume_link_token(token: str) -> bool:
    return token.startswith(LINK_PREFIX + ".")


def conversation_of_link(secret: str, token: str, now: datetime) -> str | None:
    """The conversation a resume link token names; None when forged, malformed or expired."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != LINK_PREFIX:
        return None
    _prefix, conversation_id, expires, signature = parts
    if not _CONVERSATION_ID.match(conversation_id) or not expires.isdigit():
        return None
    expected = _signature(secret, f"{LINK_PREFIX}.{conversation_id}.{expires}")
    if not hmac.compare_digest(expected, signature):
        return None
    if int(expires) <= now.timestamp():
        return None
    return conversation_id


def resume_link(public_url: str, token: str) -> str:
    # In the fragment: never sent to a server, so it is not in access logs or Referer.
    return f"{public_url.rstrip('/')}/#resume={token}"


@dataclass(frozen=True)
class Contact:
    email: str
    name: str | None


async def contact_for(session: AsyncSession, conversation_id: str) -> Contact | None:
    """Where to email the customer of this conversation: the email they left in the chat
    (their latest escalation's), else the known customer's; None when there is none."""
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        return None
    customer = (
        await session.get(Customer, conversation.customer_id)
        if conversation.customer_id is not None
        else None
    )
    name = customer.name if customer is not None and not customer.is_anonymous else None
    given = await session.scalar(
        select(Escalation.contact_email)
        .where(
            Escalation.conversation_id == conversation_id,
            Escalation.contact_email.is_not(None),
        )
        .order_by(Escalation.id.desc())
        .limit(1)
    )
    for email in (given, customer.email if customer is not None else None):
        if email and _EMAIL.match(email):
            return Contact(email, name)
    return None


async def agent_lines_from(
    session: AsyncSession, conversation_id: str, first_id: int
) -> list[Message]:
    """The agents' messages of the conversation from message `first_id` on, oldest first."""
    rows = await session.scalars(
        select(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.sender == MessageSender.agent,
            Message.id >= first_id,
        )
        .order_by(Message.id)
    )
    return list(rows)


@dataclass(frozen=True)
class ReplyEmail:
    subject: str
    text: str


def compose(lines: list[Message], link: str, days: int = RESUME_LINK_DAYS) -> ReplyEmail:
    """The email for a burst of agent lines (named by the first line's author: agents'
    lines always have one, bot/domain/handoff.py)."""
    agent = str(lines[0].author)
    quoted = "\n\n".join(
        "\n".join(f"> {row}" if row else ">" for row in m.text.splitlines()) for m in lines
    )
    return ReplyEmail(
        subject=texts.render("utter_email_reply_subject", agent=agent),
        text=texts.render(
            "utter_email_reply_body", agent=agent, lines=quoted, days=days, link=link
        ),
    )
