"""A hand-made purchase history with known loyalty figures (tests/test_loyalty.py).

Range 2026-01-01..2026-03-31 UTC, as of 2026-06-15 00:00 UTC, window 90 days, so lifecycles
opened after the cut-off 2026-03-17 00:00 are still pending. Purchases (10:00 UTC):

| customer | source (customer / lifecycle) | purchase lifecycles |
|---|---|---|
| A | search | 01-10 (csat 5, nps 10), 03-01 (csat 4 + 3), 05-15 |
| B | ad | 01-20 (csat 1, stage support, escalation through that feedback) |
| C | friend | 02-05 (csat 3, nps 7), 06-01 (116 days later; an escalation about this order) |
| D | search | 03-25 (pending), 04-10 |
| E | - / - | 2025-12-15, 01-15 (nps 6, stage support, no escalation) |
| H | social | subscription periods 01-01, 02-01, 03-01, 04-01 (nps 9 in the first); closed one month later each |
| J | search | 02-10 (csat 2; escalation in a chat about this order), 05-11 10:00 (exactly 90 days) |
| K | ad | 03-10 (csat 4; escalation in the customer's time without order), 06-09 (91 days) |
| M | - / marketing_email | subscription period 02-15, closed 03-15, never renewed |
| G | search | a discovery journey only (02-01): not a purchase |
| N | search | 2025-12-31 23:30 UTC (January 1st in Berlin) |

Expected (UTC): repeat 3 of 7 (42.9 %), 1 pending (D); 9 customers with 12 lifecycles in
range (1.33; distribution 7/1/1/0; new 8, returning 1: E); renewals 2 of 3 (66.7 %);
return rate 6 of 11 (54.5 %), 1 pending.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.enums import (
    AcquisitionSource,
    Channel,
    EscalationReason,
    FeedbackKind,
    FeedbackSource,
    LifecycleKind,
    OrderStatus,
    Stage,
    SubscriptionStatus,
)
from bot.storage.models import (
    Conversation,
    Customer,
    Escalation,
    Feedback,
    Lifecycle,
    Order,
    Subscription,
)

AS_OF = datetime(2026, 6, 15, tzinfo=timezone.utc)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


class _Builder:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db
        self.orders = 0
        self.feedback = 0

    async def customer(self, external_id: str, source: AcquisitionSource | None) -> Customer:
        row = Customer(external_id=external_id, name=external_id, acquisition_source=source)
        self.db.add(row)
        await self.db.flush()
        return row

    async def purchase(
        self,
        customer: Customer,
        opened: str,
        *,
        stage: Stage = Stage.use,
        channel: AcquisitionSource | None = None,
        subscription: Subscription | None = None,
        closed: str | None = None,
    ) -> Lifecycle:
        order_id = None
        if subscription is None:
            self.orders += 1
            order = Order(
                number=f"L{self.orders:04d}",
                customer_id=customer.id,
                status=OrderStatus.delivered,
                total=Decimal("10.00"),
                shipping_address="x",
                placed_at=at(opened),
            )
            self.db.add(order)
            await self.db.flush()
            order_id = order.id
        row = Lifecycle(
            customer_id=customer.id,
            kind=LifecycleKind.subscription_period if subscription else LifecycleKind.one_time,
            stage=stage,
            opened_at=at(opened),
            closed_at=at(closed) if closed else None,
            order_id=order_id,
            subscription_id=subscription.id if subscription else None,
            period_start=at(opened) if subscription else None,
            acquisition_channel=channel if channel else customer.acquisition_source,
        )
        self.db.add(row)
        await self.db.flush()
        return row

    async def score(self, lifecycle: Lifecycle, kind: FeedbackKind, score: int) -> Feedback:
        self.feedback += 1
        row = Feedback(
            idempotency_key=f"loyalty-{self.feedback}",
            customer_id=lifecycle.customer_id,
            lifecycle_id=lifecycle.id,
            stage=lifecycle.stage,
            channel=Channel.website_chat,
            source=FeedbackSource.chat_survey,
            kind=kind,
            score=score,
            created_at=lifecycle.opened_at + timedelta(days=2),
        )
        self.db.add(row)
        await self.db.flush()
        return row

    async def subscription(self, customer: Customer, started: str) -> Subscription:
        row = Subscription(
            customer_id=customer.id,
            plan="Coffee",
            price=Decimal("20.00"),
            status=SubscriptionStatus.active,
            started_at=at(started),
            current_period_start=at(started),
            current_period_end=at(started) + timedelta(days=30),
        )
        self.db.add(row)
        await self.db.flush()
        return row


async def seed_loyalty(session_factory: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    """The data set above; returns customer ids by letter."""
    S = AcquisitionSource
    async with session_factory() as db, db.begin():
        b = _Builder(db)
        a = await b.customer("A", S.search)
        a1 = await b.purchase(a, "2026-01-10T10:00:00")
        await b.score(a1, FeedbackKind.csat, 5)
        await b.score(a1, FeedbackKind.nps, 10)
        a2 = await b.purchase(a, "2026-03-01T10:00:00")
        await b.score(a2, FeedbackKind.csat, 4)
        await b.score(a2, FeedbackKind.csat, 3)
        await b.purchase(a, "2026-05-15T10:00:00")

        cb = await b.customer("B", S.ad)
        b1 = await b.purchase(cb, "2026-01-20T10:00:00", stage=Stage.support)
        low = await b.score(b1, FeedbackKind.csat, 1)
        db.add(
            Escalation(
                customer_id=cb.id,
                feedback_id=low.id,
                reason=EscalationReason.negative_feedback,
                priority=3,
                created_at=at("2026-01-23T10:00:00"),
            )
        )

        c = await b.customer("C", S.friend)
        c1 = await b.purchase(c, "2026-02-05T10:00:00")
        await b.score(c1, FeedbackKind.csat, 3)
        await b.score(c1, FeedbackKind.nps, 7)
        c2 = await b.purchase(c, "2026-06-01T10:00:00")
        db.add(Conversation(id="conv-c", customer_id=c.id, order_id=c2.order_id))
        await db.flush()
        db.add(
            Escalation(
                conversation_id="conv-c",
                customer_id=c.id,
                reason=EscalationReason.customer_request,
                priority=2,
                created_at=at("2026-02-10T10:00:00"),  # inside C's first lifecycle, other order
            )
        )

        d = await b.customer("D", S.search)
        await b.purchase(d, "2026-03-25T10:00:00")
        await b.purchase(d, "2026-04-10T10:00:00")

        e = await b.customer("E", None)
        await b.purchase(e, "2025-12-15T10:00:00")
        e2 = await b.purchase(e, "2026-01-15T10:00:00", stage=Stage.support)
        await b.score(e2, FeedbackKind.nps, 6)

        h = await b.customer("H", S.social)
        sub = await b.subscription(h, "2026-01-01T10:00:00")
        periods = ["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01", "2026-05-01"]
        for start, end in itertools.pairwise(periods):
            period = await b.purchase(
                h, f"{start}T10:00:00", subscription=sub, closed=f"{end}T10:00:00"
            )
            if start == "2026-01-01":
                await b.score(period, FeedbackKind.nps, 9)

        j = await b.customer("J", S.search)
        j1 = await b.purchase(j, "2026-02-10T10:00:00")
        await b.score(j1, FeedbackKind.csat, 2)
        db.add(Conversation(id="conv-j", customer_id=j.id, order_id=j1.order_id))
        await db.flush()
        db.add(
            Escalation(
                conversation_id="conv-j",
                customer_id=j.id,
                reason=EscalationReason.customer_request,
                priority=2,
                created_at=at("2026-02-12T10:00:00"),
            )
        )
        await b.purchase(j, "2026-05-11T10:00:00")

        k = await b.customer("K", S.ad)
        k1 = await b.purchase(k, "2026-03-10T10:00:00")
        await b.score(k1, FeedbackKind.csat, 4)
        db.add(
            Escalation(
                customer_id=k.id,
                reason=EscalationReason.fallback,
                priority=1,
                created_at=at("2026-03-11T10:00:00"),
            )
        )
        await b.purchase(k, "2026-06-09T10:00:00")

        m = await b.customer("M", None)
        msub = await b.subscription(m, "2026-02-15T10:00:00")
        await b.purchase(
            m,
            "2026-02-15T10:00:00",
            subscription=msub,
            channel=S.marketing_email,
            closed="2026-03-15T10:00:00",
        )

        g = await b.customer("G", S.search)
        db.add(
            Lifecycle(
                customer_id=g.id,
                kind=LifecycleKind.one_time,
                stage=Stage.research,
                opened_at=at("2026-02-01T10:00:00"),
            )
        )
        n = await b.customer("N", S.search)
        await b.purchase(n, "2025-12-31T23:30:00")
        customers = {"A": a, "B": cb, "C": c, "D": d, "E": e, "H": h, "J": j, "K": k, "M": m}
        return {letter: row.id for letter, row in {**customers, "G": g, "N": n}.items()}
