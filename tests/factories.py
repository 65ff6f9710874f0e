"""Small builders for test data (explicit values; no randomness)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import lifecycle as lifecycles
from bot.domain.enums import OrderStatus, SubscriptionStatus
from bot.storage.models import Customer, Lifecycle, Order, OrderItem, Subscription, utcnow


async def customer(session: AsyncSession, n: int = 1, email: str | None = None) -> Customer:
    row = Customer(external_id=f"T{n}", email=email or f"customer{n}@example.com", name=f"Test {n}")
    session.add(row)
    await session.flush()
    return row


async def order(
    session: AsyncSession,
    owner: Customer,
    number: str,
    status: OrderStatus,
    *,
    placed_days_ago: int = 10,
    delivered_days_ago: int | None = None,
    subscription: Subscription | None = None,
) -> Order:
    now = utcnow()
    placed = now - timedelta(days=placed_days_ago)
    shipped = placed + timedelta(days=1) if status is not OrderStatus.placed else None
    delivered: datetime | None = None
    if status in (OrderStatus.delivered, OrderStatus.returned, OrderStatus.refunded):
        delivered = now - timedelta(
            days=delivered_days_ago if delivered_days_ago is not None else 3
        )
    if status is OrderStatus.cancelled:
        shipped = None
    row = Order(
        number=number,
        customer_id=owner.id,
        subscription_id=subscription.id if subscription else None,
        status=status,
        total=Decimal("59.90"),
        currency="EUR",
        shipping_address="1 Test Street, 10115 Berlin",
        carrier="DHL" if shipped else None,
        tracking_number="JJD000390007" if shipped else None,
        placed_at=placed,
        shipped_at=shipped,
        estimated_delivery=(shipped + timedelta(days=3)) if shipped else None,
        delivered_at=delivered,
        refunded_at=now - timedelta(days=1) if status is OrderStatus.refunded else None,
        cancelled_at=placed + timedelta(hours=2) if status is OrderStatus.cancelled else None,
        items=[
            OrderItem(sku="KIT-0001", name="Stoneware Mug", quantity=2, unit_price=Decimal("29.95"))
        ],
    )
    session.add(row)
    await session.flush()
    return row


async def subscription(
    session: AsyncSession, owner: Customer, status: SubscriptionStatus = SubscriptionStatus.active
) -> Subscription:
    now = utcnow()
    row = Subscription(
        customer_id=owner.id,
        plan="Coffee Explorer Box",
        price=Decimal("24.00"),
        currency="EUR",
        status=status,
        started_at=now - timedelta(days=95),
        current_period_start=now - timedelta(days=5),
        current_period_end=now + timedelta(days=25),
    )
    session.add(row)
    await session.flush()
    return row


async def order_lifecycle(
    session: AsyncSession, owner_n: int, number: str, status: OrderStatus, delivered_days_ago: int
) -> Lifecycle:
    """A new customer's order placed 60 days ago, and its lifecycle."""
    owner = await customer(session, owner_n)
    placed = await order(
        session, owner, number, status, placed_days_ago=60, delivered_days_ago=delivered_days_ago
    )
    return await lifecycles.lifecycle_for_order(session, placed)
