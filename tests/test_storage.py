"""Storage plumbing: the engine's pool and the repositories' hot-path statements."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.domain.enums import MessageSender
from bot.storage import repositories
from bot.storage.models import Conversation, Message


async def _conversation(sessions: async_sessionmaker[AsyncSession]) -> str:
    async with sessions() as session, session.begin():
        session.add(Conversation(id="conv-1"))
    return "conv-1"


def _statements(engine: AsyncEngine) -> list[str]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    return seen


async def test_a_turns_replies_are_stored_in_one_insert_in_order(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    conversation_id = await _conversation(session_factory)
    async with session_factory() as session, session.begin():  # ids not starting at 1
        await repositories.add_message(session, conversation_id, MessageSender.customer, "hi")
    replies = [
        (f"reply {n}", [{"title": f"B{n}", "payload": f"/b{n}"}] if n % 2 else None)
        for n in range(7)
    ]
    statements = _statements(engine)
    async with session_factory() as session, session.begin():
        stored = await repositories.add_messages(
            session, conversation_id, MessageSender.bot, replies
        )
    assert statements == ["INSERT"]
    async with session_factory() as session:
        rows = (
            await session.scalars(
                select(Message).where(Message.sender == MessageSender.bot).order_by(Message.id)
            )
        ).all()
    assert [(m.text, m.buttons) for m in rows] == replies
    assert [(m.id, m.text, m.buttons, m.created_at) for m in stored] == [
        (m.id, m.text, m.buttons, m.created_at) for m in rows
    ]


async def test_no_replies_store_nothing(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    conversation_id = await _conversation(session_factory)
    statements = _statements(engine)
    async with session_factory() as session, session.begin():
        assert (
            await repositories.add_messages(session, conversation_id, MessageSender.bot, []) == []
        )
    assert statements == []


async def test_a_failed_transaction_leaves_nothing_behind_in_the_pooled_connection(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """SQLite's pool does not roll back returned connections (bot/storage/db.py): the
    session's own rollback must leave the connection clean and the write lock free."""
    conversation_id = await _conversation(session_factory)
    with pytest.raises(RuntimeError):
        async with session_factory() as session, session.begin():
            await repositories.add_message(session, conversation_id, MessageSender.customer, "lost")
            raise RuntimeError("the turn failed")
    async with engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        if engine.dialect.name == "sqlite":
            assert driver.in_transaction is False
        else:
            assert driver.is_in_transaction() is False
    # A write lock left behind would make this insert wait out SQLite's busy timeout.
    async with session_factory() as session, session.begin():
        await repositories.add_message(session, conversation_id, MessageSender.customer, "kept")
    async with session_factory() as session:
        texts = (await session.scalars(select(Message.text))).all()
    assert texts == ["kept"]
