"""Chat sessions: the server mints the conversation (Rasa sender) id and the browser's token."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage import repositories
from bot.storage.models import Conversation, ConversationStatus, Message

TOKEN_BYTES = 32


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ChatSession:
    conversation: Conversation
    token: str
    history: Sequence[Message]


async def start_or_resume(session: AsyncSession, token: str | None) -> ChatSession:
    """Resume the conversation the token belongs to, or start a new one.

    The token is a bearer secret kept by the browser; the Rasa sender id is a separate
    random id that never leaves the server, so a visitor cannot pick someone else's.
    """
    if token:
        conversation = await session.scalar(
            select(Conversation).where(Conversation.access_token_hash == _hash(token))
        )
        if conversation is not None and conversation.status is not ConversationStatus.closed:
            history = await repositories.transcript(session, conversation.id)
            return ChatSession(conversation, token, history)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    conversation = Conversation(id=secrets.token_hex(16), access_token_hash=_hash(token))
    session.add(conversation)
    await session.flush()
    return ChatSession(conversation, token, [])


def bot_may_answer(conversation: Conversation) -> bool:
    """While a person is (about to be) handling the chat, the bot stays silent."""
    return conversation.status is ConversationStatus.bot
