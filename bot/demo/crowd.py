"""The demo shop's crowd: a year of a real shop's customers and feedback, in bulk.

`write_crowd` adds, next to the hand-made history of `bot.demo.planner` (README customers, the
DPD, checkout-bug and price-increase stories), `customers` more customers with a year of
orders and feedback, written with multi-row INSERTs (no per-row domain calls: about 10 000
feedback rows load in seconds). The rows follow the same rules as `bot.demo.writer`: one
lifecycle per order, opened before it, stage moving forward with the order's status,
closed when the order is cancelled, returned, refunded or completed; every feedback row
after its lifecycle opened and not after `now`, with VADER sentiment and themes of its text.

What it shows (docs/dashboard.md, "Demo data"):

* **Seasonality**: orders follow a retail year (Black Friday and Christmas peak at about
  twice a quiet month, a January and summer lull; Sunday evenings busier); delivery CSAT
  dips in the December rush (more late parcels).
* **Planted pitfall**: support by **email** (slow replies): support CSAT mostly 1-2 and CES
  6-7, and those customers rarely order again; the (support, email) cell of the journey
  map is a CSAT pitfall and tops "What to fix first".
* **Emerging theme**: complaints about the new app's login at checkout ("website") start
  six weeks before `now` and grow week on week (an alert's theme spike).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import analysis
from bot.domain.enums import (
    AcquisitionSource,
    Channel,
    FeedbackKind,
    FeedbackSource,
    LifecycleKind,
    OrderStatus,
    Stage,
)
from bot.domain.lifecycle import STAGE_ORDER
from bot.domain.scores import SCALES
from bot.storage.models import Customer, Feedback, Lifecycle, Order, OrderItem, SurveyDispatch

YEAR_DAYS = 365
FIRST_NUMBER = 30001  # order numbers A30001...: after the hand-made history's A10001...
FIRST_CUSTOMER = 5001  # C5001...
# Orders per month relative to the busiest one (a European home-goods shop).
MONTH_WEIGHTS = {
    1: 0.45,
    2: 0.4,
    3: 0.55,
    4: 0.6,
    5: 0.62,
    6: 0.52,
    7: 0.42,
    8: 0.42,
    9: 0.6,
    10: 0.7,
    11: 0.95,
    12: 1.0,
}
EMERGING_DAYS = 42
CROWD_SOURCES: dict[AcquisitionSource | None, int] = {
    AcquisitionSource.search: 30,
    AcquisitionSource.social: 20,
    AcquisitionSource.friend: 12,
    AcquisitionSource.ad: 14,
    AcquisitionSource.affiliate: 6,
    AcquisitionSource.marketing_email: 10,
    AcquisitionSource.other: 3,
    None: 5,
}
DELIVERY_MEAN = {"DHL": 4.4, "DPD": 3.1, "UPS": 4.3, "PostNL": 4.2, "GLS": 4.0}
SUPPORT_CHANNELS = (Channel.support, Channel.email, Channel.call_center)
EMAIL_SUPPORT_NEG = (
    "Sent two emails about my return and waited five days for an answer.",
    "Nobody answered my email for a week, I had to call in the end. Terrible service.",
    "Email support is useless, every reply is a template and nothing gets fixed.",
    "Still waiting for an answer to my email about the refund. Very disappointed.",
)
EMERGING_TEXTS = (
    "The new app logs me out at checkout every time, I had to order on the website.",
    "Since the update the login page keeps crashing in the app. Please fix it.",
    "Can't log in on the app anymore, the checkout page just spins. Frustrating.",
    "New app is a step back: login fails and my basket is gone at checkout.",
    "The app crashed twice during checkout after the update. Annoying bug.",
)
NPS_TEXTS = {
    "pos": (
        "Lovely products and quick delivery, I recommend you to friends.",
        "Great quality, I keep coming back.",
        "Always a pleasure to order here.",
    ),
    "mixed": (
        "Good shop, but shipping costs are a bit high.",
        "Nice products, delivery could be faster.",
    ),
    "neg": (
        "Too many delivery problems lately, I order elsewhere now.",
        "Prices went up and the quality did not.",
    ),
}


@dataclass
class CrowdSummary:
    customers: int = 0
    orders: int = 0
    lifecycles: int = 0
    feedback: int = 0
    dispatches: int = 0


@dataclass
class _Row:
    """One feedback row before it is written (its lifecycle and dispatch ids come later)."""

    order: int  # index into the order list
    kind: FeedbackKind
    source: FeedbackSource
    channel: Channel
    stage: Stage
    at: datetime
    score: int | None = None
    text: str | None = None
    dispatch: int | None = None  # index into the dispatch list


@dataclass
class _Dispatch:
    order: int
    trigger: str
    kind: FeedbackKind
    sent_at: datetime
    answered_at: datetime | None = None
    declined_at: datetime | None = None
    expired_at: datetime | None = None


@dataclass
class _Crowd:
    orders: list[Any] = field(default_factory=list)  # bot.demo.planner.OrderPlan
    stages: list[Stage] = field(default_factory=list)
    closed: list[tuple[datetime | None, str | None]] = field(default_factory=list)
    first: list[bool] = field(default_factory=list)
    rows: list[_Row] = field(default_factory=list)
    dispatches: list[_Dispatch] = field(default_factory=list)


def _season(at: datetime) -> float:
    weight = MONTH_WEIGHTS[at.month]
    if at.month == 11 and at.day >= 24:  # Black Friday week
        weight *= 1.6
    if at.month == 12 and at.day > 21:  # too late for Christmas delivery
        weight *= 0.45
    return weight


class _Planner:
    def __init__(self, base: Any, rng: random.Random, now: datetime) -> None:
        self.base = base  # bot.demo.planner.Planner: names, addresses, items, shipping timelines
        self.rng = rng
        self.now = now
        self.start = now - timedelta(days=YEAR_DAYS)
        self.crowd = _Crowd()
        self.texts: Any = None

    def moment(self, after: datetime) -> datetime | None:
        """A seasonal order time after `after` (None when it would be after now)."""
        for _ in range(200):
            at = after + timedelta(days=self.rng.expovariate(1 / 75))
            if at >= self.now:
                return None
            if self.rng.random() < _season(at):
                hour = self.rng.choices(range(24), [1] * 7 + [3] * 12 + [5] * 5)[0]
                found = at.replace(hour=hour, minute=self.rng.randrange(60))
                return found if found < self.now else None
        return None

    def first_moment(self) -> datetime:
        while True:
            at = self.start + timedelta(days=self.rng.uniform(2, YEAR_DAYS - 0.5))
            if self.rng.random() < _season(at):
                hour = self.rng.choices(range(24), [1] * 7 + [3] * 12 + [5] * 5)[0]
                found = at.replace(hour=hour, minute=self.rng.randrange(60))
                if found < self.now - timedelta(hours=2):
                    return found

    def score(self, kind: FeedbackKind, mean: float, sd: float = 0.9) -> int:
        low, high = SCALES[kind.value]
        return max(low, min(high, round(self.rng.gauss(mean, sd))))

    def tone(self, kind: FeedbackKind, score: int) -> str:
        if kind is FeedbackKind.nps:
            return "pos" if score >= 9 else "mixed" if score >= 7 else "neg"
        if kind is FeedbackKind.ces:
            return "pos" if score <= 2 else "mixed" if score <= 4 else "neg"
        return "pos" if score >= 4 else "mixed" if score == 3 else "neg"

    def text(self, topic: str, tone: str, plan: Any) -> str:
        pool = self.texts[topic]
        options = pool.get(tone) or pool.get("mixed") or next(iter(pool.values()))
        template = self.rng.choice(options)
        return str(
            template.format(
                carrier=plan.carrier or "the courier",
                product=plan.product,
                number=plan.number,
                plan="coffee box",
            )
        )

    def dispatch(
        self, order: int, trigger: str, kind: FeedbackKind, sent: datetime, rate: float
    ) -> tuple[int, datetime] | None:
        """A survey sent at `sent`: its index and answer time when answered."""
        if sent > self.now:
            return None
        d = _Dispatch(order, trigger, kind, sent)
        roll = self.rng.random()
        answered = None
        if roll < rate:
            answered = sent + timedelta(minutes=self.rng.choice((1, 2, 4, 15, 60, 300)))
            if answered > self.now:
                answered = None
        if answered is not None:
            d.answered_at = answered
        elif roll < rate + 0.12:
            d.declined_at = min(sent + timedelta(minutes=2), self.now)
        elif sent + timedelta(days=14) <= self.now:
            d.expired_at = sent + timedelta(days=14)
        self.crowd.dispatches.append(d)
        return (len(self.crowd.dispatches) - 1, answered) if answered else None

    def add(self, row: _Row, opened: datetime) -> None:
        if opened < row.at <= self.now:
            self.crowd.rows.append(row)

    def order_feedback(self, index: int, plan: Any, first: bool, emailer: bool) -> bool:
        """Surveys and comments of one order; True when the customer left unhappy."""
        opened, unhappy = plan.opened_at, False
        proactive = FeedbackSource.proactive_survey
        if first and self.rng.random() < 0.9:
            found = self.dispatch(
                index,
                "first_order",
                FeedbackKind.csat,
                plan.placed_at + self.base.hours(1, 20),
                0.5,
            )
            if found:
                d, at = found
                score = self.score(FeedbackKind.csat, 4.3)
                self.add(
                    _Row(
                        index,
                        FeedbackKind.csat,
                        proactive,
                        Channel.website_chat,
                        Stage.purchase,
                        at,
                        score,
                        dispatch=d,
                    ),
                    opened,
                )
        if plan.shipped_at is not None and self.rng.random() < 0.3:  # "where is my order?"
            asked = plan.shipped_at + self.base.hours(6, 40)
            if plan.delivered_at is None or asked < plan.delivered_at:
                found = self.dispatch(index, "in_chat:order_status", FeedbackKind.csat, asked, 0.55)
                if found:
                    d, at = found
                    score = self.score(FeedbackKind.csat, 4.0 - (1.2 if plan.late else 0))
                    self.add(
                        _Row(
                            index,
                            FeedbackKind.csat,
                            FeedbackSource.chat_survey,
                            Channel.website_chat,
                            Stage.purchase,
                            at,
                            score,
                            dispatch=d,
                        ),
                        opened,
                    )
        if plan.delivered_at is not None and self.rng.random() < 0.85:
            sent = plan.delivered_at + self.base.hours(18, 30)
            found = self.dispatch(index, "order_delivered", FeedbackKind.csat, sent, 0.6)
            if found:
                d, at = found
                mean = DELIVERY_MEAN.get(plan.carrier or "", 4.0) - (1.6 if plan.late else 0)
                if at.month == 12:
                    mean -= 0.3
                score = self.score(FeedbackKind.csat, mean)
                stage = Stage.use
                self.add(
                    _Row(
                        index,
                        FeedbackKind.csat,
                        proactive,
                        Channel.website_chat,
                        stage,
                        at,
                        score,
                        dispatch=d,
                    ),
                    opened,
                )
                if self.rng.random() < 0.45:
                    text = self.text("delivery", self.tone(FeedbackKind.csat, score), plan)
                    self.add(
                        _Row(
                            index,
                            FeedbackKind.comment,
                            proactive,
                            Channel.website_chat,
                            stage,
                            at + timedelta(minutes=1),
                            text=text,
                            dispatch=d,
                        ),
                        opened,
                    )
                unhappy = unhappy or score <= 2
            if self.rng.random() < 0.32:  # a storefront review of the product
                at = plan.delivered_at + self.base.days(3, 25)
                score = self.score(FeedbackKind.csat, 4.1, 1.1)
                topic = f"product_{plan.category}"
                where = self.rng.choices((Channel.storefront, Channel.review_site), (3, 1))[0]
                kind = FeedbackKind.praise if score >= 4 else FeedbackKind.complaint
                if score == 3:
                    kind = FeedbackKind.comment
                self.add(
                    _Row(
                        index,
                        kind,
                        FeedbackSource.imported,
                        where,
                        Stage.use,
                        at,
                        text=self.text(topic, self.tone(FeedbackKind.csat, score), plan),
                    ),
                    opened,
                )
        if plan.support is not None and plan.support_at is not None:
            unhappy = self.support(index, plan, emailer) or unhappy
        return unhappy

    def support(self, index: int, plan: Any, emailer: bool) -> bool:
        opened, at = plan.opened_at, plan.support_at
        channel = Channel.email if emailer else self.rng.choices(SUPPORT_CHANNELS, (60, 22, 18))[0]
        topic = {"late": "delivery", "damaged": "product_" + plan.category}.get(plan.support)
        complaint = self.text(topic or "support", "neg", plan)
        if channel is Channel.email and self.rng.random() < 0.5:
            complaint = self.rng.choice(EMAIL_SUPPORT_NEG)
        self.add(
            _Row(
                index,
                FeedbackKind.complaint,
                FeedbackSource.free_text if channel is Channel.support else FeedbackSource.imported,
                channel,
                Stage.support,
                at,
                text=complaint,
            ),
            opened,
        )
        sent = (
            at + self.base.hours(4, 60) if channel is Channel.email else at + self.base.hours(1, 6)
        )
        found = self.dispatch(index, "support_resolved", FeedbackKind.csat, sent, 0.6)
        if not found:
            return channel is Channel.email
        d, answered = found
        slow = channel is Channel.email
        csat = self.score(FeedbackKind.csat, 1.7 if slow else 3.9)
        ces = self.score(FeedbackKind.ces, 6.1 if slow else 2.8, 1.0)
        src = FeedbackSource.chat_survey
        self.add(
            _Row(index, FeedbackKind.csat, src, channel, Stage.support, answered, csat, dispatch=d),
            opened,
        )
        self.add(
            _Row(
                index,
                FeedbackKind.ces,
                src,
                channel,
                Stage.support,
                answered + timedelta(seconds=40),
                ces,
                dispatch=d,
            ),
            opened,
        )
        if self.rng.random() < 0.5:
            text = (
                self.rng.choice(EMAIL_SUPPORT_NEG)
                if slow
                else self.text("support", self.tone(FeedbackKind.csat, csat), plan)
            )
            self.add(
                _Row(
                    index,
                    FeedbackKind.comment,
                    src,
                    channel,
                    Stage.support,
                    answered + timedelta(seconds=90),
                    text=text,
                    dispatch=d,
                ),
                opened,
            )
        return csat <= 2

    def nps(self, index: int, plan: Any, unhappy: bool) -> None:
        """The relationship survey by email, some weeks after a delivered order."""
        if plan.delivered_at is None or self.rng.random() > 0.6:
            return
        sent = plan.delivered_at + self.base.days(14, 40)
        found = self.dispatch(index, "relationship_nps", FeedbackKind.nps, sent, 0.45)
        if not found:
            return
        d, at = found
        score = self.score(FeedbackKind.nps, 4.5 if unhappy else 8.4, 1.6)
        stage = self.crowd.stages[index]
        self.add(
            _Row(
                index,
                FeedbackKind.nps,
                FeedbackSource.proactive_survey,
                Channel.email,
                stage,
                at,
                score,
                dispatch=d,
            ),
            plan.opened_at,
        )
        if self.rng.random() < 0.35:
            self.add(
                _Row(
                    index,
                    FeedbackKind.comment,
                    FeedbackSource.proactive_survey,
                    Channel.email,
                    stage,
                    at + timedelta(minutes=1),
                    text=self.rng.choice(NPS_TEXTS[self.tone(FeedbackKind.nps, score)]),
                    dispatch=d,
                ),
                plan.opened_at,
            )

    def emerging(self, index: int, plan: Any) -> None:
        """App login complaints at checkout: none until six weeks ago, then growing."""
        age = (self.now - plan.placed_at).total_seconds() / 86400
        if age >= EMERGING_DAYS or age < 0:
            return
        share = 0.04 + 0.3 * (1 - age / EMERGING_DAYS) ** 2
        if self.rng.random() < share:
            at = plan.placed_at - self.base.hours(0.1, 0.5)
            if at <= plan.opened_at:
                at = plan.placed_at
            self.add(
                _Row(
                    index,
                    FeedbackKind.complaint,
                    FeedbackSource.free_text,
                    Channel.website_chat,
                    Stage.purchase,
                    at,
                    text=self.rng.choice(EMERGING_TEXTS),
                ),
                plan.opened_at,
            )


def _stage_and_closing(
    plan: Any, return_window: timedelta, now: datetime
) -> tuple[Stage, datetime | None, str | None]:
    status = plan.status
    if status is OrderStatus.cancelled:
        return Stage.purchase, plan.cancelled_at, "cancelled"
    if status in (OrderStatus.placed, OrderStatus.shipped):
        asked = plan.support is not None and plan.support_at is not None and plan.support_at <= now
        return (Stage.support if asked else Stage.purchase), None, None
    if status is OrderStatus.refunded:
        return Stage.support, plan.refunded_at, "refunded"
    if status is OrderStatus.returned:
        return Stage.support, plan.return_requested_at + timedelta(days=1), "returned"
    if plan.support is not None:
        return Stage.support, None, None
    if plan.delivered_at + return_window <= now:
        return Stage.use, plan.delivered_at + return_window, "completed"
    return Stage.use, None, None


async def write_crowd(
    session: AsyncSession,
    base: Any,
    rng: random.Random,
    now: datetime,
    customers: int,
    texts: dict[str, dict[str, tuple[str, ...]]],
    return_window: timedelta = timedelta(days=30),
) -> CrowdSummary:
    """Plan and write `customers` customers with a year of orders and feedback."""
    planner = _Planner(base, rng, now)
    planner.texts = texts
    crowd = planner.crowd
    people = []
    for n in range(customers):
        person = base.crowd_customer(f"C{FIRST_CUSTOMER + n}", CROWD_SOURCES)
        people.append(person)
        emailer = False
        at: datetime | None = planner.first_moment()
        first_order = True
        while at is not None:
            age = (now - at).total_seconds() / 86400
            plan = base.one_time(person, at, base.status(age))
            plan.opened_at = max(at - base.hours(0.3, 60), planner.start + timedelta(hours=1))
            if plan.opened_at >= at:
                plan.opened_at = at - timedelta(minutes=5)
            plan.number = f"A{FIRST_NUMBER + len(crowd.orders)}"
            index = len(crowd.orders)
            crowd.orders.append(plan)
            crowd.first.append(first_order)
            stage, closed_at, reason = _stage_and_closing(plan, return_window, now)
            crowd.stages.append(stage)
            crowd.closed.append((closed_at if closed_at and closed_at <= now else None, reason))
            # An email support contact is the planted pitfall: about a fifth of them.
            emailer = plan.support is not None and rng.random() < 0.22
            unhappy = planner.order_feedback(index, plan, first_order, emailer)
            planner.nps(index, plan, unhappy)
            planner.emerging(index, plan)
            if person.first_activity is None:
                person.first_activity = plan.opened_at
            first_order = False
            stay = 0.12 if (unhappy or emailer) else 0.7
            at = planner.moment(at) if rng.random() < stay else None
    return await _insert(session, planner, people, now)


async def _ids(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Multi-row INSERTs with the ids chosen here (after the highest one), in row order.

    (INSERT ... RETURNING in parameter order runs one statement per row on SQLite.) On
    PostgreSQL the id sequence is moved past them afterwards.
    """
    table = model.__table__
    start = int(await session.scalar(select(func.coalesce(func.max(table.c.id), 0))) or 0) + 1
    ids = list(range(start, start + len(rows)))
    for row_id, row in zip(ids, rows, strict=True):
        row["id"] = row_id
    await _plain(session, model, rows)
    if rows and session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT setval(pg_get_serial_sequence(:table, 'id'), :last)"),
            {"table": table.name, "last": ids[-1]},
        )
    return ids


async def _plain(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 2000):
        await session.execute(
            insert(model).execution_options(render_nulls=True), rows[start : start + 2000]
        )


async def _insert(
    session: AsyncSession, planner: _Planner, people: list[Any], now: datetime
) -> CrowdSummary:
    crowd = planner.crowd
    customer_ids = await _ids(
        session,
        Customer,
        [
            {
                "external_id": p.external_id,
                "email": p.email,
                "name": p.name,
                "is_anonymous": False,
                "acquisition_source": p.source,
                "created_at": (p.first_activity or now) - timedelta(hours=1),
            }
            for p in people
        ],
    )
    for person, row_id in zip(people, customer_ids, strict=True):
        person.id = row_id
    orders = crowd.orders
    order_ids = await _ids(
        session,
        Order,
        [plan.order_row(plan.status) for plan in orders],
    )
    await _plain(
        session,
        OrderItem,
        [
            {"order_id": oid, "sku": sku, "name": name, "quantity": qty, "unit_price": price}
            for plan, oid in zip(orders, order_ids, strict=True)
            for sku, name, qty, price in plan.items
        ],
    )
    lifecycle_ids = await _ids(
        session,
        Lifecycle,
        [
            {
                "customer_id": plan.customer.id,
                "kind": LifecycleKind.one_time,
                "stage": stage,
                "opened_at": plan.opened_at,
                "closed_at": closed_at,
                "close_reason": reason if closed_at else None,
                "order_id": oid,
                "subscription_id": None,
                "period_start": None,
                "acquisition_channel": plan.customer.source
                if first
                else AcquisitionSource.marketing_email,
            }
            for plan, oid, stage, (closed_at, reason), first in zip(
                orders, order_ids, crowd.stages, crowd.closed, crowd.first, strict=True
            )
        ],
    )
    dispatch_ids = await _ids(
        session,
        SurveyDispatch,
        [
            {
                "customer_id": orders[d.order].customer.id,
                "lifecycle_id": lifecycle_ids[d.order],
                "conversation_id": None,
                "trigger": d.trigger,
                "survey_kind": d.kind,
                "created_at": d.sent_at,
                "sent_at": d.sent_at,
                "offer_count": 1,
                "accepted_at": d.answered_at,
                "answered_at": d.answered_at,
                "declined_at": d.declined_at,
                "expired_at": d.expired_at,
            }
            for d in crowd.dispatches
        ],
    )
    analysed: dict[str, tuple[float | None, list[str]]] = {}
    rows = []
    for n, row in enumerate(crowd.rows):
        sentiment: float | None = None
        themes: list[str] = []
        if row.text:
            if row.text not in analysed:
                analysed[row.text] = (analysis.sentiment(row.text), analysis.themes(row.text))
            sentiment, themes = analysed[row.text]
        # The row's stage is never past the lifecycle's stage now (stages only move forward).
        stage = row.stage
        final = crowd.stages[row.order]
        if STAGE_ORDER.index(stage) > STAGE_ORDER.index(final):
            stage = final
        rows.append(
            {
                "idempotency_key": f"demo:crowd:{n}",
                "customer_id": orders[row.order].customer.id,
                "lifecycle_id": lifecycle_ids[row.order],
                "stage": stage,
                "channel": row.channel,
                "source": row.source,
                "kind": row.kind,
                "score": row.score,
                "text": row.text,
                "sentiment": sentiment,
                "themes": themes,
                "conversation_id": None,
                "survey_dispatch_id": dispatch_ids[row.dispatch]
                if row.dispatch is not None
                else None,
                "order_id": order_ids[row.order],
                "created_at": row.at,
            }
        )
    await _plain(session, Feedback, rows)
    return CrowdSummary(
        customers=len(people),
        orders=len(orders),
        lifecycles=len(lifecycle_ids),
        feedback=len(rows),
        dispatches=len(dispatch_ids),
    )
