"""Lifecycle rules of SPEC §3: current lifecycle, forward-only stages, one per purchase/period."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.enums import LifecycleKind, OrderStatus, Stage
from bot.storage.models import Customer, Lifecycle, Order, utcnow

STAGE_ORDER = (Stage.discovery, Stage.research, Stage.purchase, Stage.use, Stage.support)
SUPPORT_ENTRY_STAGES = frozenset({Stage.purchase, Stage.use})
CLOSING_ORDER_STATUSES = frozenset(
    {OrderStatus.returned, OrderStatus.refunded, OrderStatus.cancelled}
)
# The stages an order's status implies, in order: a lifecycle first seen at a returned
# order walks purchase → use → support rather than jumping (support needs purchase or use).
STAGES_FOR_ORDER_STATUS = {
    OrderStatus.placed: (Stage.purchase,),
    OrderStatus.shipped: (Stage.purchase,),
    OrderStatus.delivered: (Stage.purchase, Stage.use),
    OrderStatus.returned: (Stage.purchase, Stage.use, Stage.support),
    OrderStatus.refunded: (Stage.purchase, Stage.use, Stage.support),
    OrderStatus.cancelled: (Stage.purchase,),
}


def can_move(current: Stage, target: Stage) -> bool:
    """Stages only move forward; support is entered from purchase or use only."""
    if target is Stage.support:
        return current in SUPPORT_ENTRY_STAGES
    return STAGE_ORDER.index(target) > STAGE_ORDER.index(current)


def advance(lifecycle: Lifecycle, target: Stage) -> bool:
    """Move an open lifecycle to `target` if the rules allow it; returns whether it moved."""
    if lifecycle.closed_at is not None or not can_move(lifecycle.stage, target):
        return False
    lifecycle.stage = target
    return True


def close(lifecycle: Lifecycle, reason: str, at: datetime | None = None) -> None:
    if lifecycle.closed_at is None:
        lifecycle.closed_at = at or utcnow()
        lifecycle.close_reason = reason


async def current_lifecycle(
    session: AsyncSession, customer: Customer, at: datetime | None = None
) -> Lifecycle:
    """The customer's newest open lifecycle; a new one in discovery if none is open."""
    lifecycle = await session.scalar(
        select(Lifecycle)
        .where(Lifecycle.customer_id == customer.id, Lifecycle.closed_at.is_(None))
        .order_by(Lifecycle.opened_at.desc(), Lifecycle.id.desc())
        .limit(1)
    )
    if lifecycle is None:
        lifecycle = Lifecycle(
            customer_id=customer.id,
            kind=LifecycleKind.one_time,
            stage=Stage.discovery,
            opened_at=at or utcnow(),
            acquisition_channel=customer.acquisition_source,
        )
        session.add(lifecycle)
        await session.flush()
    return lifecycle


async def lifecycle_for_order(
    session: AsyncSession, order: Order, at: datetime | None = None
) -> Lifecycle:
    """The one lifecycle of this purchase (or subscription period); created if missing.

    `at` is when the order reached its status (a shop event's time), used if it closes.
    """
    lifecycle = await session.scalar(select(Lifecycle).where(Lifecycle.order_id == order.id))
    if lifecycle is not None:
        return lifecycle
    # A journey that started before the purchase (discovery/research) becomes this order's.
    open_unlinked = await session.scalar(
        select(Lifecycle)
        .where(
            Lifecycle.customer_id == order.customer_id,
            Lifecycle.closed_at.is_(None),
            Lifecycle.order_id.is_(None),
            Lifecycle.subscription_id.is_(None),
            Lifecycle.stage.in_([Stage.discovery, Stage.research]),
        )
        .order_by(Lifecycle.opened_at.desc())
        .limit(1)
    )
    customer = await session.get(Customer, order.customer_id)
    lifecycle = open_unlinked or Lifecycle(
        customer_id=order.customer_id,
        stage=Stage.discovery,
        opened_at=order.placed_at,
        acquisition_channel=customer.acquisition_source if customer else None,
    )
    lifecycle.order_id = order.id
    lifecycle.kind = (
        LifecycleKind.subscription_period if order.subscription_id else LifecycleKind.one_time
    )
    lifecycle.subscription_id = order.subscription_id
    if order.subscription_id:
        lifecycle.period_start = order.placed_at
    session.add(lifecycle)
    sync_with_order(lifecycle, order, at)
    await session.flush()
    return lifecycle


def sync_with_order(lifecycle: Lifecycle, order: Order, at: datetime | None = None) -> None:
    """Bring the lifecycle's stage and closing in line with the order's status."""
    for stage in STAGES_FOR_ORDER_STATUS[order.status]:
        advance(lifecycle, stage)
    if order.status in CLOSING_ORDER_STATUSES:
        close(lifecycle, order.status.value, at)


# A delivered purchase with no support is complete once its return window has passed.
COMPLETED_STAGES = (Stage.purchase, Stage.use)
SWEEP_BATCH = 500


async def close_completed(
    session: AsyncSession, now: datetime, return_window: timedelta, limit: int = SWEEP_BATCH
) -> int:
    """Close up to `limit` one-time lifecycles whose order was delivered more than the return
    window ago and never needed support (SPEC §3), as of the window's end, reason
    "completed"; returns how many. A lifecycle in support stays open until its order is
    returned, refunded or the shop closes it: support may still be going on."""
    rows = await session.execute(
        select(Lifecycle, Order.delivered_at)
        .join(Order, Lifecycle.order_id == Order.id)
        .where(
            Lifecycle.closed_at.is_(None),
            Lifecycle.kind == LifecycleKind.one_time,
            Lifecycle.stage.in_(COMPLETED_STAGES),
            Order.status == OrderStatus.delivered,
            Order.delivered_at < now - return_window,
        )
        .order_by(Order.delivered_at, Lifecycle.id)
        .limit(limit)
    )
    closed = 0
    for lifecycle, delivered_at in rows.tuples():
        if delivered_at is not None:  # always, by the query
            close(lifecycle, "completed", delivered_at + return_window)
            closed += 1
    await session.flush()
    return closed


async def close_all_completed(
    sessions: async_sessionmaker[AsyncSession],
    now: datetime,
    return_window: timedelta,
    batch: int = SWEEP_BATCH,
) -> int:
    """`close_completed` until none is left, one batch per transaction; returns how many."""
    total = 0
    while True:
        async with sessions() as session, session.begin():
            closed = await close_completed(session, now, return_window, batch)
        total += closed
        if closed < batch:
            return total
