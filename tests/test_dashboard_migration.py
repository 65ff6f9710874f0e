"""Migration 0005: the daily rollups are backfilled from existing rows and then kept by
triggers; downgrading removes them (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import text

from bot.storage.db import create_engine
from tests.test_migrations import _config, _drop_everything

FEEDBACK = (
    "INSERT INTO feedback (idempotency_key, customer_id, lifecycle_id, stage, channel, source,"
    " kind, score, sentiment, themes, created_at) VALUES (:key, 1, 1, 'use', 'email',"
    " 'chat_survey', :kind, :score, :sentiment, '[]', :at)"
)


async def _run(
    database_url: str, statements: list[tuple[str, dict[str, object]]]
) -> list[tuple[object, ...]]:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            rows: list[tuple[object, ...]] = []
            for statement, values in statements:
                result = await connection.execute(text(statement), values)
                if result.returns_rows:
                    rows = [tuple(r) for r in result]
            return rows
    finally:
        await engine.dispose()


def test_0005_backfills_the_rollups_and_installs_the_triggers(database_url: str) -> None:
    from datetime import datetime, timezone

    asyncio.run(_drop_everything(database_url))
    config = _config(database_url)
    command.upgrade(config, "0004")
    day = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    asyncio.run(
        _run(
            database_url,
            [
                ("INSERT INTO customers (id, external_id, is_anonymous, created_at) VALUES (1, 'C1', false, :at)", {"at": day}),
                ("INSERT INTO lifecycles (id, customer_id, kind, stage, opened_at) VALUES (1, 1, 'one_time', 'use', :at)", {"at": day}),
                (FEEDBACK, {"key": "a", "kind": "csat", "score": 5, "sentiment": None, "at": day}),
                (FEEDBACK, {"key": "b", "kind": "csat", "score": 2, "sentiment": -0.5, "at": day}),
            ],
        )
    )  # fmt: skip
    command.upgrade(config, "0005")
    select = "SELECT volume, csat_responses, csat_satisfied, sentiment_count FROM feedback_daily"
    assert asyncio.run(_run(database_url, [("SELECT 1", {}), (select, {})])) == [(2, 2, 1, 1)]
    rows = asyncio.run(
        _run(
            database_url,
            [
                (FEEDBACK, {"key": "c", "kind": "csat", "score": 4, "sentiment": 0.5, "at": day}),
                ("DELETE FROM feedback WHERE idempotency_key = 'b'", {}),
                (select, {}),
            ],
        )
    )
    assert rows == [(2, 2, 2, 1)]
    command.downgrade(config, "0004")
    tables = asyncio.run(
        _run(database_url, [(FEEDBACK, {"key": "d", "kind": "csat", "score": 1, "sentiment": None, "at": day}),
                            ("SELECT count(*) FROM feedback", {})])
    )  # fmt: skip
    assert tables == [(3,)]  # no trigger left behind writing to a dropped table
    command.downgrade(config, "base")
