"""`load_demo_data`: the demo shop written in one transaction, unless it is already there."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.demo import crowd as crowd_rows
from bot.demo import support as support_rows
from bot.demo.data import MARKER_EXTERNAL_ID, TEXTS
from bot.demo.planner import OrderPlan, Planner
from bot.demo.writer import Writer
from bot.domain.enums import OrderStatus, SubscriptionStatus
from bot.storage.models import Customer, Feedback, Lifecycle, Order, Subscription, SurveyDispatch


@dataclass(frozen=True)
class DemoSummary:
    """Rows written by the loader; when `created` is False, the rows already in the database."""

    customers: int
    orders: int
    subscriptions: int
    lifecycles: int
    feedback: int
    dispatches: int
    created: bool


# --- entry point -------------------------------------------------------------------------


async def _existing_summary(session: AsyncSession) -> DemoSummary:
    async def count(model: type[object]) -> int:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)

    return DemoSummary(
        customers=await count(Customer),
        orders=await count(Order),
        subscriptions=await count(Subscription),
        lifecycles=await count(Lifecycle),
        feedback=await count(Feedback),
        dispatches=await count(SurveyDispatch),
        created=False,
    )


async def _demo_present(session: AsyncSession) -> bool:
    found = await session.scalar(
        select(Customer.id).where(Customer.external_id == MARKER_EXTERNAL_ID)
    )
    return found is not None


async def load_demo_data(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    seed: int = 7,
    now: datetime | None = None,
    crowd: int = 0,
) -> DemoSummary:
    """Write the demo shop in one transaction; nothing is written if it is already there.

    `crowd` more customers get a year of orders and feedback in bulk (bot/crowd_rows.py):
    `python -m bot demo` asks for 2 000 (DEMO_CROWD_CUSTOMERS); tests use the small shop.
    """
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(timezone.utc)
    rng = random.Random(seed)
    try:
        async with session_factory() as session, session.begin():
            if await _demo_present(session):
                return await _existing_summary(session)
            return await _write(session, rng, now, crowd)
    except IntegrityError:
        # Another loader committed the demo data first: report it instead of failing.
        async with session_factory() as session:
            if await _demo_present(session):
                return await _existing_summary(session)
        raise


async def _write(
    session: AsyncSession, rng: random.Random, now: datetime, crowd: int = 0
) -> DemoSummary:
    planner = Planner(rng, now)
    jane, tom, priya = planner.readme_customers()
    used = {jane.name, tom.name, priya.name}
    regulars = [planner.customer(f"C{1004 + i}", used) for i in range(64)]
    browsers = [planner.customer(f"C{1068 + i}", used) for i in range(5)]

    orders = planner.readme_orders(jane, tom, priya)
    generated: list[OrderPlan] = []
    for customer in regulars:
        generated.extend(planner.customer_orders(customer))
    for customer in rng.sample(regulars, 14):  # recent orders: some delivered in the last days
        age = rng.uniform(0.5, 14)
        generated.append(planner.one_time(customer, now - timedelta(days=age), planner.status(age)))

    present = {plan.status for plan in generated}
    for status in (OrderStatus.returned, OrderStatus.refunded, OrderStatus.cancelled):
        if status not in present:
            age = rng.uniform(60, 400)
            generated.append(
                planner.one_time(rng.choice(regulars), now - timedelta(days=age), status)
            )

    statuses = [SubscriptionStatus.active] * 4 + [SubscriptionStatus.paused] * 3
    statuses += [SubscriptionStatus.cancelled] * 4
    rng.shuffle(statuses)
    subs = [planner.subscription(jane, SubscriptionStatus.active, jane=True)]
    subs += [
        planner.subscription(customer, status)
        for customer, status in zip(rng.sample(regulars, len(statuses)), statuses, strict=True)
    ]
    for sub in subs:
        generated.extend(planner.subscription_orders(sub))

    generated.sort(key=lambda plan: plan.placed_at)
    for index, plan in enumerate(generated):
        plan.number = f"A{10007 + index}"
    orders.extend(generated)
    orders.sort(key=lambda plan: plan.placed_at)

    browse_start = {customer.external_id: now - planner.days(0.5, 12) for customer in browsers}
    for plan in orders:
        customer = plan.customer
        if customer.first_activity is None or plan.opened_at < customer.first_activity:
            customer.first_activity = plan.opened_at
    for customer in browsers:
        customer.first_activity = browse_start[customer.external_id]

    writer = Writer(session, rng, now)
    await writer.add_customers([jane, tom, priya, *regulars, *browsers])
    await writer.add_subscriptions(subs)
    await writer.add_orders(orders)
    for plan in orders:
        await writer.order(plan)
    for customer in browsers:
        await writer.open_journey(customer, browse_start[customer.external_id])
    await session.flush()
    counts = writer.counts
    extra = crowd_rows.CrowdSummary()
    if crowd:
        extra = await crowd_rows.write_crowd(session, planner, rng, now, crowd, TEXTS)
    # Escalations handled by the demo agents, and applied insights (bot/support_rows.py).
    await support_rows.write_support(session, rng, now)
    return DemoSummary(
        customers=counts.customers + extra.customers,
        orders=counts.orders + extra.orders,
        subscriptions=counts.subscriptions,
        lifecycles=len(counts.lifecycle_ids) + extra.lifecycles,
        feedback=counts.feedback + extra.feedback,
        dispatches=counts.dispatches + extra.dispatches,
        created=True,
    )
