"""A small hand-made feedback data set with known metrics (tests of the CX dashboard).

March 2026, UTC (range 2026-03-01..2026-03-31; previous period 2026-01-29..2026-02-28):

* csat 5, 4, 3, 1 -> CSAT 50.0 % (2 of 4); nps 10, 9, 9, 8, 6, 0 -> 3 promoters,
  1 passive, 2 detractors -> NPS 16.7; ces 2, 5 -> CES 3.5; 15 rows; sentiment
  (-0.5 + 0.8) / 2 = 0.15; dispatches sent 3, answered 2 -> 66.7 %.
* Edges: rows at 03-01 00:00:00 and 03-31 23:59:59 UTC are in; 04-01 00:00:00 is out;
  02-28 23:30 UTC is in the previous period in UTC but in March in Europe/Berlin, where
  03-31 23:59:59 UTC is already April (Berlin March: csat 5, 4, 3, 4 -> 75.0 %).
* 03-29 22:30 UTC is 03-30 00:30 in Berlin (summer time started that morning).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.enums import (
    AcquisitionSource,
    Channel,
    FeedbackKind,
    FeedbackSource,
    LifecycleKind,
    MessageSender,
    OrderStatus,
    Stage,
)
from bot.storage.models import (
    Conversation,
    Customer,
    Feedback,
    Lifecycle,
    Message,
    Order,
    OrderItem,
    SurveyDispatch,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Seeded:
    customers: dict[str, int]
    conversation_id: str


COMMENT_WITH_FORMULA = '=HYPERLINK("http://evil.example","click"), late parcel 📦\nsecond line'


async def seed(session_factory: async_sessionmaker[AsyncSession]) -> Seeded:
    async with session_factory() as db, db.begin():
        c1 = Customer(
            external_id="C1", name='Ann, "the" tester', acquisition_source=AcquisitionSource.search
        )
        c2 = Customer(external_id="C2", name="+Bob", acquisition_source=AcquisitionSource.ad)
        c3 = Customer(external_id="C3", name="Cid")
        db.add_all([c1, c2, c3])
        await db.flush()
        l1 = Lifecycle(
            customer_id=c1.id,
            kind=LifecycleKind.one_time,
            stage=Stage.use,
            opened_at=at("2026-03-01T00:00:00"),
            acquisition_channel=AcquisitionSource.search,
        )
        l2 = Lifecycle(
            customer_id=c2.id,
            kind=LifecycleKind.one_time,
            stage=Stage.support,
            opened_at=at("2026-03-02T00:00:00"),
            acquisition_channel=AcquisitionSource.ad,
        )
        l3 = Lifecycle(
            customer_id=c3.id,
            kind=LifecycleKind.one_time,
            stage=Stage.discovery,
            opened_at=at("2026-03-03T00:00:00"),
        )
        l4 = Lifecycle(
            customer_id=c1.id,
            kind=LifecycleKind.one_time,
            stage=Stage.purchase,
            opened_at=at("2026-02-01T00:00:00"),
        )
        db.add_all([l1, l2, l3, l4])
        o1 = _order(c1.id, "A1", [("SKU-A", "Alpha mug"), ("SKU-B", "Beta jug")])
        o2 = _order(c2.id, "A2", [("SKU-A", "Alpha mug")])
        db.add_all([o1, o2])
        conversation = Conversation(id="conv-1", customer_id=c2.id)
        db.add(conversation)
        await db.flush()
        db.add_all(
            [
                Message(
                    conversation_id="conv-1",
                    sender=MessageSender.customer,
                    text="My parcel is late",
                ),
                Message(
                    conversation_id="conv-1", sender=MessageSender.bot, text="Sorry to hear that!"
                ),
            ]
        )
        d1 = _dispatch(c1.id, l1.id, "order_delivered", "2026-03-05T10:00:00", True)
        d2 = _dispatch(c2.id, l2.id, "order_delivered", "2026-03-06T10:00:00", False)
        d3 = _dispatch(c2.id, l2.id, "support_resolved", "2026-03-07T10:00:00", True)
        d4 = _dispatch(c1.id, l4.id, "order_placed", "2026-02-25T10:00:00", True)
        db.add_all([d1, d2, d3, d4])
        await db.flush()

        rows = [
            # (created, kind, score, lifecycle, stage, channel, order, dispatch, sentiment, themes, text)
            (
                "2026-03-01T00:00:00",
                FeedbackKind.csat,
                5,
                l1,
                Stage.use,
                Channel.website_chat,
                o1,
                d1,
                None,
                [],
                None,
            ),
            (
                "2026-03-10T12:00:00",
                FeedbackKind.csat,
                4,
                l1,
                Stage.use,
                Channel.email,
                o1,
                None,
                None,
                [],
                None,
            ),
            (
                "2026-03-11T12:00:00",
                FeedbackKind.csat,
                3,
                l2,
                Stage.support,
                Channel.call_center,
                o2,
                d3,
                None,
                [],
                None,
            ),
            (
                "2026-03-31T23:59:59",
                FeedbackKind.csat,
                1,
                l2,
                Stage.support,
                Channel.support,
                o2,
                None,
                None,
                [],
                None,
            ),
            (
                "2026-03-12T09:00:00",
                FeedbackKind.nps,
                10,
                l1,
                Stage.use,
                Channel.website_chat,
                None,
                None,
                None,
                [],
                None,
            ),
            (
                "2026-03-12T10:00:00",
                FeedbackKind.nps,
                9,
                l1,
                Stage.use,
                Channel.website_chat,
                None,
                None,
                None,
                [],
                None,
            ),
            (
                "2026-03-13T09:00:00",
                FeedbackKind.nps,
                9,
                l2,
                Stage.support,
                Channel.email,
                None,
                None,
                None,
                [],
                None,
            ),
            (
                "2026-03-13T10:00:00",
                FeedbackKind.nps,
                8,
                l2,
                Stage.support,
                Channel.email,
                None,
                None,
                None,
                [],
                None,
            ),
            (
                "2026-03-14T09:00:00",
                FeedbackKind.nps,
                6,
                l3,
                Stage.discovery,
                Channel.social,
                None,
                None,
                None,
                [],
                None,
            ),
            (
                "2026-03-14T10:00:00",
                FeedbackKind.nps,
                0,
                l3,
                Stage.discovery,
                Channel.social,
                None,
                None,
                None,
                [],
                None,
            ),
            (
                "2026-03-15T09:00:00",
                FeedbackKind.ces,
                2,
                l2,
                Stage.support,
                Channel.support,
                None,
                None,
                None,
                [],
                None,
            ),
            (
                "2026-03-15T10:00:00",
                FeedbackKind.ces,
                5,
                l2,
                Stage.support,
                Channel.support,
                None,
                None,
                None,
                [],
                None,
            ),
            (
                "2026-03-16T09:00:00",
                FeedbackKind.complaint,
                None,
                l2,
                Stage.support,
                Channel.website_chat,
                o2,
                None,
                -0.5,
                ["delivery"],
                COMMENT_WITH_FORMULA,
            ),
            (
                "2026-03-16T10:00:00",
                FeedbackKind.praise,
                None,
                l1,
                Stage.use,
                Channel.storefront,
                o1,
                None,
                0.8,
                ["price"],
                "Great price, love it",
            ),
            (
                "2026-03-29T22:30:00",
                FeedbackKind.comment,
                None,
                l1,
                Stage.use,
                Channel.website_chat,
                None,
                None,
                None,
                [],
                "Just checking in",
            ),
            # outside UTC March
            (
                "2026-02-28T23:30:00",
                FeedbackKind.csat,
                4,
                l4,
                Stage.purchase,
                Channel.website_chat,
                None,
                None,
                None,
                [],
                None,
            ),
            (
                "2026-04-01T00:00:00",
                FeedbackKind.csat,
                5,
                l1,
                Stage.use,
                Channel.website_chat,
                None,
                None,
                None,
                [],
                None,
            ),
            (
                "2026-02-10T12:00:00",
                FeedbackKind.csat,
                5,
                l4,
                Stage.purchase,
                Channel.website_chat,
                None,
                None,
                None,
                [],
                None,
            ),
        ]
        for i, (
            created,
            kind,
            score,
            lc,
            stage,
            channel,
            order,
            dispatch,
            sentiment,
            themes,
            text,
        ) in enumerate(rows):
            db.add(
                Feedback(
                    idempotency_key=f"t{i}",
                    customer_id=lc.customer_id,
                    lifecycle_id=lc.id,
                    stage=stage,
                    channel=channel,
                    source=FeedbackSource.chat_survey
                    if score is not None
                    else FeedbackSource.free_text,
                    kind=kind,
                    score=score,
                    text=text,
                    sentiment=sentiment,
                    themes=themes,
                    order_id=order.id if order else None,
                    survey_dispatch_id=dispatch.id if dispatch else None,
                    conversation_id="conv-1" if text == COMMENT_WITH_FORMULA else None,
                    created_at=at(created),
                )
            )
        return Seeded({"C1": c1.id, "C2": c2.id, "C3": c3.id}, "conv-1")


def _order(customer_id: int, number: str, items: list[tuple[str, str]]) -> Order:
    order = Order(
        number=number,
        customer_id=customer_id,
        status=OrderStatus.delivered,
        total=Decimal("10.00"),
        shipping_address="x",
        placed_at=at("2026-02-27T10:00:00"),
    )
    order.items = [
        OrderItem(sku=sku, name=name, quantity=1, unit_price=Decimal("5.00")) for sku, name in items
    ]
    return order


def _dispatch(
    customer_id: int, lifecycle_id: int, trigger: str, sent: str, answered: bool
) -> SurveyDispatch:
    return SurveyDispatch(
        customer_id=customer_id,
        lifecycle_id=lifecycle_id,
        trigger=trigger,
        survey_kind=FeedbackKind.csat,
        created_at=at(sent),
        sent_at=at(sent),
        answered_at=at(sent).replace(minute=5) if answered else None,
    )
