"""Chat sessions: server-minted conversation (Rasa sender) id and browser resume token."""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.conversations import TOKEN_BYTES, start_or_resume
from bot.domain.enums import ConversationStatus, MessageSender
from bot.storage import repositories
from bot.storage.models import Conversation


async def _conversations(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Conversation)) or 0)


async def test_new_token_starts_a_conversation_and_same_token_resumes_it(
    session: AsyncSession,
) -> None:
    started = await start_or_resume(session, None)
    await repositories.add_message(session, started.conversation.id, MessageSender.customer, "hi")
    await repositories.add_message(
        session,
        started.conversation.id,
        MessageSender.bot,
        "Hello! How can I help?",
        [{"title": "Where is my order?", "payload": "/order_status"}],
    )
    await session.commit()

    assert started.history == []
    assert started.conversation.status is ConversationStatus.bot
    assert started.conversation.customer_id is None
    assert len(started.token) >= 40  # 32 random bytes, url-safe base64
    assert await _conversations(session) == 1

    resumed = await start_or_resume(session, started.token)
    await session.commit()

    assert resumed.conversation.id == started.conversation.id
    assert resumed.token == started.token
    assert [(m.sender, m.text, m.buttons) for m in resumed.history] == [
        (MessageSender.customer, "hi", None),
        (
            MessageSender.bot,
            "Hello! How can I help?",
            [{"title": "Where is my order?", "payload": "/order_status"}],
        ),
    ]
    assert await _conversations(session) == 1


async def test_unknown_or_empty_token_starts_a_new_conversation(session: AsyncSession) -> None:
    first = await start_or_resume(session, None)
    await session.commit()

    unknown = await start_or_resume(session, "not-a-token-we-issued")
    empty = await start_or_resume(session, "")
    await session.commit()

    ids = {first.conversation.id, unknown.conversation.id, empty.conversation.id}
    tokens = {first.token, unknown.token, empty.token}
    assert len(ids) == 3
    assert len(tokens) == 3
    assert "not-a-token-we-issued" not in tokens
    assert unknown.history == [] and empty.history == []
    assert await _conversations(session) == 3


async def test_closed_conversation_is_not_resumed(session: AsyncSession) -> None:
    first = await start_or_resume(session, None)
    first.conversation.status = ConversationStatus.closed
    await session.commit()

    again = await start_or_resume(session, first.token)
    await session.commit()

    assert again.conversation.id != first.conversation.id
    assert again.token != first.token
    assert again.conversation.status is ConversationStatus.bot
    assert await _conversations(session) == 2


async def test_sender_id_differs_from_token_and_token_is_not_stored(
    session: AsyncSession,
) -> None:
    chats = [await start_or_resume(session, None) for _ in range(3)]
    await session.commit()

    for chat in chats:
        assert chat.conversation.id != chat.token
        assert chat.token not in chat.conversation.id
        assert len(chat.conversation.id) == 32
        int(chat.conversation.id, 16)  # hex
        assert chat.conversation.access_token_hash == (
            hashlib.sha256(chat.token.encode()).hexdigest()
        )
    assert len({chat.conversation.id for chat in chats}) == 3
    assert TOKEN_BYTES == 32

    # no column of any stored row contains a token in clear
    rows = (await session.execute(text("SELECT * FROM conversations"))).all()
    assert len(rows) == 3
    stored = " ".join(str(value) for row in rows for value in row)
    for chat in chats:
        assert chat.token not in stored
