"""The shop events queue (issue #7): accept as pending, apply by workers in order, crash-safe."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import shop_events
from bot.domain.enums import ShopEventStatus
from bot.domain.shop_events import (
    EVENT_TYPES,
    event_from_json,
    event_to_json,
    parse_event,
    queue,
    rules,
)
from bot.domain.shop_events import batch as batch_apply
from bot.storage.db import create_engine
from bot.storage.models import Order, ShopEvent
from tests.test_shop_events import order_event, sub_event

Sessions = async_sessionmaker[AsyncSession]


def events(*payloads: dict[str, Any]) -> list[shop_events.EventData]:
    return [parse_event(p) for p in payloads]


def flow(customer: str, number: str, prefix: str) -> list[dict[str, Any]]:
    kinds = [("placed", 0), ("shipped", 1), ("delivered", 2)]
    return [
        order_event(f"{prefix}-{k}", kind, hours, number=number, customer=customer)
        for k, (kind, hours) in enumerate(kinds)
    ]


async def states(sessions: Sessions) -> dict[str, ShopEventStatus]:
    async with sessions() as session:
        rows = await session.execute(select(ShopEvent.id, ShopEvent.status))
        return {row.id: row.status for row in rows}


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_the_stored_form_reads_back_as_the_same_event(event_type: str) -> None:
    if event_type.startswith("order."):
        payload = order_event("e1", event_type.split(".")[1], 3)
        payload["order"].update(
            placed_at="2026-03-01T08:00:00+01:00",
            shipping_address="1 Main St",
            carrier="DHL",
            tracking_number="JD01",
            estimated_delivery="2026-03-05T18:00:00Z",
            currency="usd",
        )
    else:
        payload = sub_event("e1", event_type.split(".")[1], 3)
    event = parse_event(payload)
    assert event_from_json(event_to_json(event)) == event


async def test_accept_stores_pending_and_a_replay_answers_the_stored_state(
    session_factory: Sessions,
) -> None:
    placed = order_event("e1", "placed", 0)
    [first] = await shop_events.accept(session_factory, events(placed))
    assert first == shop_events.Accepted("e1", False, ShopEventStatus.pending, None)
    changed = {**placed, "order": {**placed["order"], "total": "99.00"}}
    # The same id twice in one batch, and again later: replays, nothing changes.
    answers = await shop_events.accept(session_factory, events(changed, changed))
    assert answers == [shop_events.Accepted("e1", True, ShopEventStatus.pending, None)] * 2
    assert await states(session_factory) == {"e1": ShopEventStatus.pending}

    assert await shop_events.drain(session_factory) == 1
    [replay] = await shop_events.accept(session_factory, events(changed))
    assert (replay.replayed, replay.status) == (True, ShopEventStatus.applied)
    assert replay.result is not None and replay.result["order"]["number"] == "A20001"
    async with session_factory() as session:
        assert [str(o.total) for o in (await session.scalars(select(Order))).all()] == ["25.00"]


async def test_a_batch_inserts_new_ids_and_answers_known_ones_in_order(
    session_factory: Sessions,
) -> None:
    await shop_events.accept(session_factory, events(order_event("e1", "placed", 0)))
    answers = await shop_events.accept(
        session_factory,
        events(order_event("e2", "shipped", 1), order_event("e1", "placed", 0)),
    )
    assert [(a.id, a.replayed) for a in answers] == [("e2", False), ("e1", True)]
    assert await states(session_factory) == {
        "e1": ShopEventStatus.pending,
        "e2": ShopEventStatus.pending,
    }


async def test_one_customers_events_are_applied_in_the_order_received_by_parallel_workers(
    session_factory: Sessions,
) -> None:
    await shop_events.accept(session_factory, events(*flow("C1", "A1", "a")))
    await shop_events.accept(session_factory, events(*flow("C2", "A2", "b")))

    async def worker() -> list[str]:
        done: list[str] = []
        for _ in range(40):
            try:
                batch = await shop_events.apply_pending(session_factory, limit=1)
            except Exception:  # SQLite busy: the rows stay pending, try again
                batch = []
            done += [a.id for a in batch]
            await asyncio.sleep(0)
        return done

    finished = await asyncio.gather(*(worker() for _ in range(3)))
    assert sorted(i for done in finished for i in done) == [
        "a-0",
        "a-1",
        "a-2",
        "b-0",
        "b-1",
        "b-2",
    ]
    async with session_factory() as session:
        results = {
            row.id: row.result
            for row in await session.execute(select(ShopEvent.id, ShopEvent.result))
        }
        orders = {o.number: o.status.value for o in (await session.scalars(select(Order))).all()}
    assert orders == {"A1": "delivered", "A2": "delivered"}
    for prefix, number in (("a", "A1"), ("b", "A2")):
        # Each event found its predecessor applied: every one moved the order on.
        assert results[f"{prefix}-1"]["changes"][0] == f"order {number}: placed → shipped"
        assert results[f"{prefix}-2"]["changes"][0] == f"order {number}: shipped → delivered"


async def test_a_worker_that_dies_mid_batch_loses_nothing(session_factory: Sessions) -> None:
    await shop_events.accept(session_factory, events(*flow("C1", "A1", "a")))
    await shop_events.accept(session_factory, events(*flow("C2", "A2", "b")))
    # A worker claims a batch (each customer's oldest event) and applies part of it, then
    # its process dies: its transaction never commits.
    async with session_factory() as session:
        await session.begin()
        claimed = await queue._claim(session, 10)
        assert [event_id for event_id, _, _ in claimed] == ["a-0", "b-0"]
        await shop_events.apply(session, event_from_json(claimed[0][1]))
        await session.rollback()
    assert set((await states(session_factory)).values()) == {ShopEventStatus.pending}

    assert await shop_events.drain(session_factory) == 6
    assert set((await states(session_factory)).values()) == {ShopEventStatus.applied}
    async with session_factory() as session:
        orders = (await session.scalars(select(Order).order_by(Order.number))).all()
        assert [(o.number, o.status.value) for o in orders] == [
            ("A1", "delivered"),
            ("A2", "delivered"),
        ]


async def test_a_customer_whose_oldest_event_is_held_is_skipped(
    session_factory: Sessions, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer: a second worker waits instead of skipping")
    await shop_events.accept(
        session_factory, events(order_event("a-0", "placed", 0, customer="C1"))
    )
    await shop_events.accept(
        session_factory, events(order_event("b-0", "placed", 0, number="A2", customer="C2"))
    )
    await shop_events.accept(
        session_factory, events(order_event("a-1", "shipped", 1, customer="C1"))
    )
    async with session_factory() as holder:
        await holder.begin()
        await holder.get(ShopEvent, "a-0", with_for_update=True)
        # a-0 is held: the worker takes C2's event, and not C1's later one.
        assert [a.id for a in await shop_events.apply_pending(session_factory)] == ["b-0"]
        assert await shop_events.apply_pending(session_factory) == []
        await holder.rollback()
    # One event per customer and batch, in the order received.
    assert [a.id for a in await shop_events.apply_pending(session_factory)] == ["a-0"]
    assert [a.id for a in await shop_events.apply_pending(session_factory)] == ["a-1"]


async def test_two_workers_apply_batches_in_parallel(
    session_factory: Sessions, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers by itself")
    await shop_events.accept(
        session_factory, events(order_event("a-0", "placed", 0, customer="C1"))
    )
    await shop_events.accept(
        session_factory, events(order_event("b-0", "placed", 0, number="A2", customer="C2"))
    )
    async with session_factory() as first:
        await first.begin()
        assert [i for i, _, _ in await queue._claim(first, 1)] == ["a-0"]
        # Another worker (another replica) applies the rest meanwhile (issue #25: there used
        # to be one batch at a time across workers).
        assert [a.id for a in await shop_events.apply_pending(session_factory)] == ["b-0"]
        await first.rollback()
    assert [a.id for a in await shop_events.apply_pending(session_factory)] == ["a-0"]


async def test_an_unexpected_error_is_retried_then_the_event_fails(
    session_factory: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    await shop_events.accept(session_factory, events(order_event("e1", "placed", 0)))

    async def broken(
        session: AsyncSession, event: shop_events.EventData, received_at: Any = None
    ) -> dict[str, Any]:
        raise RuntimeError("a bug")

    def broken_batch(*_args: Any) -> None:
        raise RuntimeError("a bug in the batch apply")

    monkeypatch.setattr(rules, "apply", broken)
    # The batch apply fails too, and hands the batch to `apply` one event at a time.
    monkeypatch.setattr(batch_apply, "_fast", broken_batch)
    for _ in range(shop_events.MAX_ATTEMPTS - 1):
        assert await shop_events.apply_pending(session_factory) == []
    assert await states(session_factory) == {"e1": ShopEventStatus.pending}
    [failed] = await shop_events.apply_pending(session_factory)
    assert failed.status is ShopEventStatus.failed
    assert failed.result == {
        "error": {
            "code": "not_applied",
            "message": "The event could not be applied (RuntimeError); it was tried 5 times.",
        }
    }
    assert await shop_events.apply_pending(session_factory) == []


def test_migration_0010_keeps_earlier_events_as_applied(database_url: str) -> None:
    from alembic import command
    from sqlalchemy import text

    from tests.test_migrations import _config, _drop_everything

    async def run(statement: str) -> list[Any]:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(statement))
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    asyncio.run(_drop_everything(database_url))
    config = _config(database_url)
    command.upgrade(config, "0009")
    asyncio.run(
        run(
            "INSERT INTO shop_events (id, type, occurred_at, received_at, result) VALUES "
            "('old-1', 'order.placed', '2026-03-02 09:00:00', '2026-03-02 09:00:01', '{}')"
        )
    )
    command.upgrade(config, "0010")
    rows = asyncio.run(run("SELECT id, status, attempts, payload FROM shop_events"))
    assert [tuple(r) for r in rows] == [("old-1", "applied", 0, None)]
    asyncio.run(
        run(
            "INSERT INTO shop_events (id, type, occurred_at, received_at, status, attempts) "
            "VALUES ('new-1', 'order.placed', '2026-03-02 09:00:00', '2026-03-02 09:00:01', "
            "'pending', 0)"
        )
    )
    # A downgrade cannot keep events that were never applied.
    command.downgrade(config, "0009")
    assert [tuple(r) for r in asyncio.run(run("SELECT id FROM shop_events"))] == [("old-1",)]
    asyncio.run(_drop_everything(database_url))


def test_the_claim_statement_is_built_once_per_batch_size() -> None:
    """Every applier of every web replica polls the queue each second; building the claim
    took 10-30 ms of Python per poll (issue #25), so it is built once per batch size."""
    assert queue._claimable(queue.QUEUE_BATCH) is queue._claimable(queue.QUEUE_BATCH)
    assert queue._claimable(1) is queue._claimable(1)
    assert queue._claimable(1) is not queue._claimable(queue.QUEUE_BATCH)
