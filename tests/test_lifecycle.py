"""Lifecycle rules of SPEC §3: current lifecycle, forward-only stages, one per purchase/period."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import PROJECT_ROOT
from bot.domain import lifecycle as lifecycles
from bot.domain.enums import AcquisitionSource, LifecycleKind, OrderStatus, Stage
from bot.storage.models import Lifecycle, Order, utcnow
from tests import factories

D, R, P, U, S = Stage.discovery, Stage.research, Stage.purchase, Stage.use, Stage.support
ORDERED = [D, R, P, U, S]

# (current, target) → allowed. Forward only; support only from purchase or use.
MOVES = {
    (D, D): False,
    (D, R): True,
    (D, P): True,
    (D, U): True,
    (D, S): False,
    (R, D): False,
    (R, R): False,
    (R, P): True,
    (R, U): True,
    (R, S): False,
    (P, D): False,
    (P, R): False,
    (P, P): False,
    (P, U): True,
    (P, S): True,
    (U, D): False,
    (U, R): False,
    (U, P): False,
    (U, U): False,
    (U, S): True,
    (S, D): False,
    (S, R): False,
    (S, P): False,
    (S, U): False,
    (S, S): False,
}


def test_move_table_covers_every_pair() -> None:
    assert set(MOVES) == {(a, b) for a in Stage for b in Stage}


@pytest.mark.parametrize(("current", "target"), list(MOVES))
def test_can_move(current: Stage, target: Stage) -> None:
    assert lifecycles.can_move(current, target) is MOVES[(current, target)]


def _lifecycle(stage: Stage, closed: bool = False) -> Lifecycle:
    return Lifecycle(
        customer_id=1,
        kind=LifecycleKind.one_time,
        stage=stage,
        opened_at=utcnow(),
        closed_at=utcnow() if closed else None,
    )


@pytest.mark.parametrize(("current", "target"), list(MOVES))
def test_advance_follows_can_move_on_open_lifecycle(current: Stage, target: Stage) -> None:
    lifecycle = _lifecycle(current)
    moved = lifecycles.advance(lifecycle, target)
    assert moved is MOVES[(current, target)]
    assert lifecycle.stage is (target if moved else current)


@pytest.mark.parametrize(("current", "target"), [(D, R), (P, U), (P, S), (U, S)])
def test_advance_refuses_on_closed_lifecycle(current: Stage, target: Stage) -> None:
    lifecycle = _lifecycle(current, closed=True)
    assert lifecycles.advance(lifecycle, target) is False
    assert lifecycle.stage is current


def test_close_keeps_the_first_reason_and_time() -> None:
    lifecycle = _lifecycle(U)
    first = utcnow() - timedelta(days=1)
    lifecycles.close(lifecycle, "completed", at=first)
    lifecycles.close(lifecycle, "cancelled")
    assert lifecycle.closed_at == first
    assert lifecycle.close_reason == "completed"


async def _count(session: AsyncSession, **where: object) -> int:
    query = select(func.count()).select_from(Lifecycle)
    for name, value in where.items():
        query = query.where(getattr(Lifecycle, name) == value)
    return int(await session.scalar(query) or 0)


async def test_current_lifecycle_opens_one_discovery_lifecycle_and_reuses_it(
    session: AsyncSession,
) -> None:
    owner = await factories.customer(session)
    owner.acquisition_source = AcquisitionSource.friend
    await session.commit()
    assert await _count(session) == 0

    first = await lifecycles.current_lifecycle(session, owner)
    await session.commit()
    second = await lifecycles.current_lifecycle(session, owner)
    await session.commit()

    assert second.id == first.id
    assert await _count(session) == 1
    row = (await session.scalars(select(Lifecycle))).one()
    assert row.customer_id == owner.id
    assert row.stage is Stage.discovery
    assert row.kind is LifecycleKind.one_time
    assert row.closed_at is None
    assert row.order_id is None
    assert row.acquisition_channel is AcquisitionSource.friend

    other = await factories.customer(session, 2)
    theirs = await lifecycles.current_lifecycle(session, other)
    await session.commit()
    assert theirs.id != first.id
    assert theirs.customer_id == other.id
    assert await _count(session) == 2


async def test_current_lifecycle_is_the_newest_open_one(session: AsyncSession) -> None:
    owner = await factories.customer(session)
    now = utcnow()
    older = Lifecycle(
        customer_id=owner.id, kind=LifecycleKind.one_time, stage=U, opened_at=now - timedelta(10)
    )
    newer = Lifecycle(
        customer_id=owner.id, kind=LifecycleKind.one_time, stage=P, opened_at=now - timedelta(2)
    )
    newest_closed = Lifecycle(
        customer_id=owner.id,
        kind=LifecycleKind.one_time,
        stage=S,
        opened_at=now - timedelta(1),
        closed_at=now,
        close_reason="refunded",
    )
    session.add_all([older, newer, newest_closed])
    await session.commit()

    current = await lifecycles.current_lifecycle(session, owner)

    assert current.id == newer.id
    assert await _count(session) == 3


async def test_current_lifecycle_opens_a_new_one_when_all_are_closed(
    session: AsyncSession,
) -> None:
    owner = await factories.customer(session)
    closed = Lifecycle(
        customer_id=owner.id,
        kind=LifecycleKind.one_time,
        stage=U,
        opened_at=utcnow() - timedelta(days=40),
        closed_at=utcnow() - timedelta(days=5),
        close_reason="completed",
    )
    session.add(closed)
    await session.commit()

    current = await lifecycles.current_lifecycle(session, owner)
    await session.commit()

    assert current.id != closed.id
    assert current.stage is Stage.discovery
    assert current.closed_at is None
    assert await _count(session) == 2


async def test_lifecycle_for_order_creates_exactly_one_per_order(session: AsyncSession) -> None:
    owner = await factories.customer(session)
    order = await factories.order(session, owner, "A10001", OrderStatus.placed)
    other = await factories.order(session, owner, "A10002", OrderStatus.placed)

    first = await lifecycles.lifecycle_for_order(session, order)
    await session.commit()
    again = await lifecycles.lifecycle_for_order(session, order)
    await session.commit()
    separate = await lifecycles.lifecycle_for_order(session, other)
    await session.commit()

    assert again.id == first.id
    assert separate.id != first.id
    assert await _count(session, order_id=order.id) == 1
    assert await _count(session, order_id=other.id) == 1
    assert await _count(session) == 2
    assert first.kind is LifecycleKind.one_time
    assert first.opened_at == order.placed_at
    assert first.subscription_id is None
    assert first.period_start is None


# order status → (stage of a lifecycle created for it, close_reason)
STAGE_BY_STATUS = {
    OrderStatus.placed: (Stage.purchase, None),
    OrderStatus.shipped: (Stage.purchase, None),
    OrderStatus.delivered: (Stage.use, None),
    OrderStatus.cancelled: (Stage.purchase, "cancelled"),
}


async def test_lifecycle_for_order_stage_follows_order_status(session: AsyncSession) -> None:
    created = {}
    for n, status in enumerate(OrderStatus, start=1):
        owner = await factories.customer(session, n)
        order = await factories.order(session, owner, f"A1000{n}", status)
        created[status] = (order.id, (await lifecycles.lifecycle_for_order(session, order)).id)
    await session.commit()

    rows = {row.id: row for row in await session.scalars(select(Lifecycle))}
    assert len(rows) == len(OrderStatus)
    for status, (stage, close_reason) in STAGE_BY_STATUS.items():
        order_id, lifecycle_id = created[status]
        row = rows[lifecycle_id]
        assert (row.order_id, row.stage, row.close_reason) == (order_id, stage, close_reason), (
            status
        )
        assert (row.closed_at is not None) is (close_reason is not None), status
    for status in (OrderStatus.returned, OrderStatus.refunded):
        row = rows[created[status][1]]
        assert row.closed_at is not None
        assert row.close_reason == status.value


async def test_lifecycle_for_returned_or_refunded_order_reaches_support(
    session: AsyncSession,
) -> None:
    owner = await factories.customer(session)
    returned = await factories.order(session, owner, "A10001", OrderStatus.returned)
    refunded = await factories.order(session, owner, "A10002", OrderStatus.refunded)

    stages = [
        (await lifecycles.lifecycle_for_order(session, order)).stage
        for order in (returned, refunded)
    ]

    assert stages == [Stage.support, Stage.support]


async def test_order_lifecycle_carries_the_acquisition_channel(session: AsyncSession) -> None:
    owner = await factories.customer(session)
    owner.acquisition_source = AcquisitionSource.social
    order = await factories.order(session, owner, "A10001", OrderStatus.placed)

    lifecycle = await lifecycles.lifecycle_for_order(session, order)

    assert lifecycle.acquisition_channel is AcquisitionSource.social


async def test_sync_with_order_moves_an_existing_lifecycle_along(session: AsyncSession) -> None:
    owner = await factories.customer(session)
    order = await factories.order(session, owner, "A10001", OrderStatus.placed)
    lifecycle = await lifecycles.lifecycle_for_order(session, order)
    assert lifecycle.stage is Stage.purchase

    order.status = OrderStatus.delivered
    lifecycles.sync_with_order(lifecycle, order)
    assert (lifecycle.stage, lifecycle.closed_at) == (Stage.use, None)

    order.status = OrderStatus.returned
    lifecycles.sync_with_order(lifecycle, order)
    assert (lifecycle.stage, lifecycle.close_reason) == (Stage.support, "returned")
    assert lifecycle.closed_at is not None


async def test_subscription_order_gets_a_subscription_period_lifecycle(
    session: AsyncSession,
) -> None:
    owner = await factories.customer(session)
    plan = await factories.subscription(session, owner)
    first = await factories.order(
        session, owner, "A10001", OrderStatus.delivered, placed_days_ago=35, subscription=plan
    )
    second = await factories.order(
        session, owner, "A10002", OrderStatus.placed, placed_days_ago=5, subscription=plan
    )

    one = await lifecycles.lifecycle_for_order(session, first)
    two = await lifecycles.lifecycle_for_order(session, second)
    await session.commit()

    assert one.id != two.id
    assert await _count(session, subscription_id=plan.id) == 2
    for lifecycle, order, stage in [(one, first, Stage.use), (two, second, Stage.purchase)]:
        assert lifecycle.kind is LifecycleKind.subscription_period
        assert lifecycle.subscription_id == plan.id
        assert lifecycle.order_id == order.id
        assert lifecycle.period_start == order.placed_at
        assert lifecycle.stage is stage


async def test_open_research_lifecycle_is_adopted_by_the_next_order(
    session: AsyncSession,
) -> None:
    owner = await factories.customer(session)
    journey = await lifecycles.current_lifecycle(session, owner)
    assert lifecycles.advance(journey, Stage.research)
    await session.commit()

    order = await factories.order(session, owner, "A10001", OrderStatus.placed, placed_days_ago=0)
    lifecycle = await lifecycles.lifecycle_for_order(session, order)
    await session.commit()

    assert lifecycle.id == journey.id
    assert await _count(session) == 1
    assert lifecycle.order_id == order.id
    assert lifecycle.stage is Stage.purchase
    assert lifecycle.kind is LifecycleKind.one_time
    # and the adopted lifecycle is what current_lifecycle now returns
    assert (await lifecycles.current_lifecycle(session, owner)).id == journey.id


async def test_a_second_order_does_not_adopt_the_first_orders_lifecycle(
    session: AsyncSession,
) -> None:
    owner = await factories.customer(session)
    first = await factories.order(session, owner, "A10001", OrderStatus.delivered)
    one = await lifecycles.lifecycle_for_order(session, first)
    second = await factories.order(session, owner, "A10002", OrderStatus.placed, placed_days_ago=1)
    two = await lifecycles.lifecycle_for_order(session, second)
    await session.commit()

    assert one.id != two.id
    assert (one.order_id, two.order_id) == (first.id, second.id)
    assert (one.stage, two.stage) == (Stage.use, Stage.purchase)
    assert await _count(session) == 2


WINDOW = timedelta(days=30)


async def test_close_completed_closes_delivered_purchases_past_the_return_window(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    now = utcnow()
    past = await factories.order_lifecycle(session, 1, "A20001", OrderStatus.delivered, 31)
    within = await factories.order_lifecycle(session, 2, "A20002", OrderStatus.delivered, 29)
    in_support = await factories.order_lifecycle(session, 3, "A20003", OrderStatus.delivered, 40)
    lifecycles.advance(in_support, Stage.support)
    shipped = await factories.order_lifecycle(session, 4, "A20004", OrderStatus.shipped, 40)
    returned = await factories.order_lifecycle(session, 5, "A20005", OrderStatus.returned, 40)
    returned_closed_at = returned.closed_at
    subscriber = await factories.customer(session, 6)
    subscription = await factories.subscription(session, subscriber)
    box = await factories.order(
        session,
        subscriber,
        "A20006",
        OrderStatus.delivered,
        delivered_days_ago=45,
        subscription=subscription,
    )
    period = await lifecycles.lifecycle_for_order(session, box)
    await session.commit()
    delivered_at = {
        row.id: row.delivered_at for row in (await session.scalars(select(Order))).all()
    }

    assert await lifecycles.close_all_completed(session_factory, now, WINDOW) == 1
    assert await lifecycles.close_all_completed(session_factory, now, WINDOW) == 0

    async with session_factory() as check:
        rows = {row.id: row for row in (await check.scalars(select(Lifecycle))).all()}
    closed = rows[past.id]
    assert closed.close_reason == "completed"
    assert past.order_id is not None
    past_delivered_at = delivered_at[past.order_id]
    assert past_delivered_at is not None
    assert closed.closed_at == past_delivered_at + WINDOW
    for still_open in (within, in_support, shipped, period):
        assert rows[still_open.id].closed_at is None, still_open.stage
    assert rows[returned.id].close_reason == "returned"
    assert rows[returned.id].closed_at == returned_closed_at


async def test_close_all_completed_works_through_batches(
    session: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    for n in range(1, 6):
        await factories.order_lifecycle(session, n, f"A3000{n}", OrderStatus.delivered, 35)
    await session.commit()

    assert await lifecycles.close_all_completed(session_factory, utcnow(), WINDOW, batch=2) == 5
    async with session_factory() as check:
        reasons = (await check.scalars(select(Lifecycle.close_reason))).all()
    assert reasons == ["completed"] * 5


async def test_close_lifecycles_command(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    past = await factories.order_lifecycle(session, 1, "A40001", OrderStatus.delivered, 31)
    await factories.order_lifecycle(session, 2, "A40002", OrderStatus.delivered, 29)
    await session.commit()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "RETURN_WINDOW_DAYS": "30",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "close-lifecycles",
        env=env,
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 0, err.decode()
    assert out.decode() == (
        "Closed 1 completed lifecycle(s) (delivered more than 30 days ago, no support).\n"
    )
    async with session_factory() as check:
        closed = (
            await check.scalars(select(Lifecycle.id).where(Lifecycle.closed_at.is_not(None)))
        ).all()
    assert closed == [past.id]
