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
                (
                    "INSERT INTO customers (id, external_id, is_anonymous, created_at) VALUES (1, 'C1', false, :at)",
                    {"at": day},
                ),
                (
                    "INSERT INTO lifecycles (id, customer_id, kind, stage, opened_at) VALUES (1, 1, 'one_time', 'use', :at)",
                    {"at": day},
                ),
                (FEEDBACK, {"key": "a", "kind": "csat", "score": 5, "sentiment": None, "at": day}),
                (FEEDBACK, {"key": "b", "kind": "csat", "score": 2, "sentiment": -0.5, "at": day}),
            ],
        )
    )
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
        _run(
            database_url,
            [
                (FEEDBACK, {"key": "d", "kind": "csat", "score": 1, "sentiment": None, "at": day}),
                ("SELECT count(*) FROM feedback", {}),
            ],
        )
    )
    assert tables == [(3,)]  # no trigger left behind writing to a dropped table
    command.downgrade(config, "base")


def test_0009_backfills_sources_and_journey_links_and_follows_source_changes(
    database_url: str,
) -> None:
    from datetime import datetime, timezone

    asyncio.run(_drop_everything(database_url))
    config = _config(database_url)
    command.upgrade(config, "0008")
    day = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    dispatch = (
        "INSERT INTO survey_dispatches (customer_id, lifecycle_id, trigger, survey_kind,"
        " created_at, sent_at, answered_at) VALUES (1, 1, 'order_delivered', 'csat', :at, :at, :answered)"
    )
    asyncio.run(
        _run(
            database_url,
            [
                (
                    "INSERT INTO customers (id, external_id, is_anonymous, acquisition_source, created_at) VALUES (1, 'C1', false, 'ad', :at)",
                    {"at": day},
                ),
                (
                    "INSERT INTO lifecycles (id, customer_id, kind, stage, opened_at) VALUES (1, 1, 'one_time', 'use', :at)",
                    {"at": day},
                ),
                (
                    "INSERT INTO lifecycles (id, customer_id, kind, stage, opened_at) VALUES (2, 1, 'one_time', 'discovery', :at)",
                    {"at": day},
                ),
                (dispatch, {"at": day, "answered": day}),
                (dispatch, {"at": day, "answered": None}),
                (FEEDBACK, {"key": "a", "kind": "csat", "score": 5, "sentiment": None, "at": day}),
            ],
        )
    )
    command.upgrade(config, "0009")
    sources = "SELECT source, sent, answered FROM survey_dispatch_sources ORDER BY source"
    groups = (
        "SELECT key, volume FROM feedback_daily_groups WHERE dimension = 'acquisition_source'"
        " AND volume > 0"
    )
    assert asyncio.run(_run(database_url, [(sources, {})])) == [("ad", 2, 1)]
    if database_url.startswith("postgresql"):
        links = "SELECT key, n FROM journey_links WHERE grain = 'n' ORDER BY key"
        assert asyncio.run(_run(database_url, [(links, {})])) == [
            ("reach:0", 2),
            ("reach:1", 1),
            ("reach:2", 1),
            ("reach:3", 1),
            ("source:unknown", 2),
        ]
    moved = asyncio.run(
        _run(
            database_url,
            [
                ("UPDATE customers SET acquisition_source = 'friend' WHERE id = 1", {}),
                (sources, {}),
            ],
        )
    )
    assert moved == [("ad", 0, 0), ("friend", 2, 1)]
    assert asyncio.run(_run(database_url, [(groups, {})])) == [("friend", 1)]
    command.downgrade(config, "0008")
    after = asyncio.run(
        _run(
            database_url,
            [
                ("UPDATE customers SET acquisition_source = 'ad' WHERE id = 1", {}),
                ("UPDATE lifecycles SET stage = 'support'", {}),
                (dispatch, {"at": day, "answered": None}),
                ("SELECT count(*) FROM survey_dispatches", {}),
            ],
        )
    )
    assert after == [(3,)]  # no trigger left behind writing to a dropped table
    command.downgrade(config, "base")
