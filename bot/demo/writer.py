"""The planned demo history replayed through the domain layer (lifecycles, feedback, survey
dispatches), in one session.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.demo.data import (
    CHURN_REASONS,
    COMPLAINTS,
    CURRENCY,
    DELIVERY_CSAT_MEAN,
    DISCOVERY_ANSWERS,
    FATIGUE,
    PAUSE_COMMENTS,
    PILLING_SKU,
    README_QUIET,
    RETURN_WINDOW,
    SURVEY_EXPIRY,
    TEXTS,
)
from bot.demo.planner import CustomerPlan, OrderPlan, SubscriptionPlan, add_months
from bot.domain import feedback as feedback_domain
from bot.domain import lifecycle as lifecycles
from bot.domain import surveys
from bot.domain.enums import (
    AcquisitionSource,
    Channel,
    FeedbackKind,
    FeedbackSource,
    LifecycleKind,
    OrderStatus,
    Stage,
)
from bot.domain.feedback import NewFeedback
from bot.domain.scores import SCALES
from bot.storage.models import Customer, Lifecycle, Order, OrderItem, Subscription, SurveyDispatch


@dataclass
class Counts:
    customers: int = 0
    orders: int = 0
    subscriptions: int = 0
    feedback: int = 0
    dispatches: int = 0
    lifecycle_ids: set[int] = field(default_factory=set)


# --- writing ---------------------------------------------------------------------------


def _tone(kind: FeedbackKind, score: int) -> str:
    if kind is FeedbackKind.nps:
        return "pos" if score >= 9 else "neg" if score <= 6 else "mixed"
    if kind is FeedbackKind.ces:
        return "pos" if score <= 3 else "neg" if score >= 5 else "mixed"
    return "pos" if score >= 4 else "neg" if score <= 2 else "mixed"


class Writer:
    """Replays the planned history through the domain layer, in one session."""

    def __init__(self, session: AsyncSession, rng: random.Random, now: datetime) -> None:
        self.session = session
        self.rng = rng
        self.now = now
        self.counts = Counts()
        self.sent: dict[int, list[datetime]] = defaultdict(list)
        self.ordered: set[int] = set()
        self.bug_window = (now - timedelta(days=165), now - timedelta(days=130))
        self.price_change = now - timedelta(days=120)

    def hours(self, low: float, high: float) -> timedelta:
        return timedelta(hours=self.rng.uniform(low, high))

    def score(self, kind: FeedbackKind, mean: float, sd: float = 0.9) -> int:
        low, high = SCALES[kind.value]
        return max(low, min(high, round(self.rng.gauss(mean, sd))))

    def text(self, topic: str, tone: str, plan: OrderPlan | None = None) -> str:
        pool = TEXTS[topic]
        options = pool.get(tone) or pool.get("mixed") or next(iter(pool.values()))
        return self.fill(self.rng.choice(options), plan)

    def fill(self, template: str, plan: OrderPlan | None) -> str:
        if plan is None:
            return template
        sub = plan.subscription
        return template.format(
            carrier=plan.carrier or "the courier",
            product=plan.product,
            number=plan.number,
            plan=sub.plan if sub else "coffee box",
        )

    # primitives -------------------------------------------------------------------------

    async def feedback(
        self,
        customer: CustomerPlan,
        lifecycle: Lifecycle,
        kind: FeedbackKind,
        source: FeedbackSource,
        channel: Channel,
        at: datetime,
        *,
        score: int | None = None,
        text: str | None = None,
        dispatch: SurveyDispatch | None = None,
    ) -> bool:
        if at > self.now or at <= lifecycle.opened_at:
            return False
        self.counts.feedback += 1
        await feedback_domain.record(
            self.session,
            NewFeedback(
                idempotency_key=f"demo:{self.counts.feedback}",
                customer_id=customer.id,
                lifecycle=lifecycle,
                kind=kind,
                source=source,
                channel=channel,
                score=score,
                text=text,
                survey_dispatch_id=dispatch.id if dispatch else None,
                created_at=at,
            ),
        )
        return True

    async def dispatch(
        self,
        customer: CustomerPlan,
        lifecycle: Lifecycle,
        trigger: str,
        kind: FeedbackKind,
        created_at: datetime,
        sent_at: datetime,
        answer_rate: float,
        *,
        exempt: bool = False,
    ) -> tuple[SurveyDispatch, datetime] | None:
        """Send a survey (fatigue rule respected); the dispatch and answer time if answered."""
        if sent_at > self.now or sent_at <= lifecycle.opened_at:
            return None
        if customer.readme and sent_at > self.now - README_QUIET:
            return None
        if not exempt and any(abs(sent_at - t) < FATIGUE for t in self.sent[customer.id]):
            return None
        self.sent[customer.id].append(sent_at)
        answered = declined = expired = None
        roll = self.rng.random()
        if roll < answer_rate:
            answered = sent_at + timedelta(minutes=self.rng.choice((1, 2, 3, 5, 20, 90, 400)))
        elif roll < answer_rate + (1 - answer_rate) * 0.4:
            declined = sent_at + timedelta(minutes=self.rng.uniform(0.2, 10))
        elif sent_at + SURVEY_EXPIRY <= self.now:
            expired = sent_at + SURVEY_EXPIRY
        if answered is not None and answered > self.now:
            answered = None
        if declined is not None and declined > self.now:
            declined = None
        row = SurveyDispatch(
            customer_id=customer.id,
            lifecycle_id=lifecycle.id,
            trigger=trigger,
            survey_kind=kind,
            created_at=created_at,
            sent_at=sent_at,
            answered_at=answered,
            declined_at=declined,
            expired_at=expired,
        )
        self.session.add(row)
        await self.session.flush()
        self.counts.dispatches += 1
        return None if answered is None else (row, answered)

    def set_status(
        self, order: Order, lifecycle: Lifecycle, status: OrderStatus, at: datetime | None
    ) -> None:
        order.status = status
        was_open = lifecycle.closed_at is None
        lifecycles.sync_with_order(lifecycle, order)
        if was_open and lifecycle.closed_at is not None and at is not None:
            lifecycle.closed_at = at

    # customers & subscriptions ------------------------------------------------------------

    async def add_customers(self, customers: list[CustomerPlan]) -> None:
        rows = []
        for plan in customers:
            first = plan.first_activity or self.now - timedelta(days=30)
            plan.created_at = first - self.hours(0.2, 30)
            rows.append(
                {
                    "external_id": plan.external_id,
                    "email": plan.email,
                    "name": plan.name,
                    "is_anonymous": False,
                    "acquisition_source": plan.source,
                    "created_at": plan.created_at,
                }
            )
        # One multi-row statement instead of one INSERT per row.
        await self.session.execute(insert(Customer).execution_options(render_nulls=True), rows)
        found = await self.session.execute(
            select(Customer.external_id, Customer.id).where(
                Customer.external_id.in_([plan.external_id for plan in customers])
            )
        )
        ids = {external_id: row_id for external_id, row_id in found}
        for plan in customers:
            plan.id = ids[plan.external_id]
        self.counts.customers += len(rows)

    async def add_subscriptions(self, subs: list[SubscriptionPlan]) -> None:
        rows = []
        for sub in subs:
            last = sub.period_starts[-1]
            rows.append(
                Subscription(
                    customer_id=sub.customer.id,
                    plan=sub.plan,
                    price=sub.price,
                    currency=CURRENCY,
                    status=sub.status,
                    started_at=sub.period_starts[0],
                    current_period_start=last,
                    current_period_end=add_months(last, 1),
                    paused_at=sub.paused_at,
                    cancelled_at=sub.cancelled_at,
                )
            )
        self.session.add_all(rows)
        await self.session.flush()
        for sub, row in zip(subs, rows, strict=True):
            sub.id = row.id
        self.counts.subscriptions += len(rows)

    # orders -------------------------------------------------------------------------------

    async def add_orders(self, plans: list[OrderPlan]) -> None:
        """All orders as placed, in bulk; `order` then replays what happened to each."""
        rows = [plan.order_row(OrderStatus.placed) for plan in plans]
        await self.session.execute(insert(Order).execution_options(render_nulls=True), rows)
        loaded = await self.session.scalars(
            select(Order).where(Order.number.in_([plan.number for plan in plans]))
        )
        by_number = {order.number: order for order in loaded}
        items: list[dict[str, object]] = []
        for plan in plans:
            plan.row = by_number[plan.number]
            items.extend(
                {
                    "order_id": plan.row.id,
                    "sku": sku,
                    "name": name,
                    "quantity": qty,
                    "unit_price": price,
                }
                for sku, name, qty, price in plan.items
            )
        await self.session.execute(insert(OrderItem), items)
        self.counts.orders += len(plans)

    async def order(self, plan: OrderPlan) -> None:
        customer = plan.customer
        pre = None
        if not plan.scripted and plan.subscription is None and self.rng.random() < 0.3:
            pre = await self.pre_purchase(plan)
        order = plan.row
        assert order is not None
        lifecycle = await lifecycles.lifecycle_for_order(self.session, order)
        self.counts.lifecycle_ids.add(lifecycle.id)
        first_order = customer.id not in self.ordered
        self.ordered.add(customer.id)
        if pre is None and plan.subscription is None:
            lifecycle.opened_at = plan.opened_at
        if plan.subscription is None:
            lifecycle.acquisition_channel = (
                customer.source if first_order else self.repeat_channel()
            )

        renewal = (
            plan.subscription is not None and plan.placed_at > plan.subscription.period_starts[0]
        )
        if not plan.scripted and not renewal:
            await self.purchase_feedback(plan, lifecycle, first_order)
        if plan.status is OrderStatus.cancelled:
            if not plan.scripted or plan.cancel_comment:
                await self.cancel_feedback(plan, lifecycle)
            self.set_status(order, lifecycle, OrderStatus.cancelled, plan.cancelled_at)
            return
        if plan.support == "billing":
            await self.support(plan, lifecycle)
        if plan.shipped_at is None:
            return
        self.set_status(order, lifecycle, OrderStatus.shipped, None)
        if not plan.scripted:
            await self.in_transit_question(plan, lifecycle)
        if plan.support == "late":
            await self.support(plan, lifecycle)
        if plan.delivered_at is None:
            return
        self.set_status(order, lifecycle, OrderStatus.delivered, None)
        await self.delivery_feedback(plan, lifecycle)
        resolved = None
        if plan.support in ("damaged", "wrong_item", "return", "box_damaged"):
            resolved = await self.support(plan, lifecycle)
        elif not plan.scripted and plan.support is None:
            await self.use_feedback(plan, lifecycle)
        if plan.status is OrderStatus.returned:
            assert plan.return_requested_at is not None
            back = min(plan.return_requested_at + self.hours(60, 160), self.now)
            self.set_status(order, lifecycle, OrderStatus.returned, back)
        elif plan.status is OrderStatus.refunded:
            self.set_status(order, lifecycle, OrderStatus.refunded, plan.refunded_at)
        if plan.subscription is not None:
            await self.subscription_events(plan, lifecycle)
        elif plan.status is OrderStatus.delivered and plan.delivered_at + RETURN_WINDOW < self.now:
            closed = plan.delivered_at + RETURN_WINDOW
            if lifecycle.stage is Stage.support:
                closed = max(closed, (resolved or plan.support_at or closed) + timedelta(days=1))
            if closed < self.now:
                lifecycles.close(lifecycle, "completed", closed)

    def repeat_channel(self) -> AcquisitionSource | None:
        return self.rng.choices(
            (
                AcquisitionSource.marketing_email,
                AcquisitionSource.search,
                AcquisitionSource.social,
                AcquisitionSource.ad,
                None,
            ),
            (35, 20, 15, 10, 20),
        )[0]

    async def pre_purchase(self, plan: OrderPlan) -> Lifecycle:
        """A discovery/research journey that the order then takes over."""
        customer = plan.customer
        lifecycle = Lifecycle(
            customer_id=customer.id,
            kind=LifecycleKind.one_time,
            stage=Stage.discovery,
            opened_at=plan.opened_at,
            acquisition_channel=customer.source,
        )
        self.session.add(lifecycle)
        await self.session.flush()
        span = (plan.placed_at - plan.opened_at).total_seconds() / 3600
        at = plan.opened_at + self.hours(0.1, span * 0.4)
        if self.rng.random() < 0.45:
            channel = self.rng.choice((Channel.social, Channel.storefront))
            tone = self.rng.choices(("pos", "mixed", "neg"), (60, 30, 10))[0]
            kind = FeedbackKind.praise if tone == "pos" else FeedbackKind.comment
            await self.feedback(
                customer,
                lifecycle,
                kind,
                FeedbackSource.imported,
                channel,
                at,
                text=self.text("discovery", tone),
            )
        if self.rng.random() < 0.7:
            lifecycles.advance(lifecycle, Stage.research)
            at = plan.opened_at + self.hours(span * 0.45, span * 0.9)
            await self.feedback(
                customer,
                lifecycle,
                FeedbackKind.comment,
                FeedbackSource.free_text,
                Channel.website_chat,
                at,
                text=self.text("research", "mixed"),
            )
        return lifecycle

    async def purchase_feedback(
        self, plan: OrderPlan, lifecycle: Lifecycle, first_order: bool
    ) -> None:
        customer = plan.customer
        in_bug = self.bug_window[0] <= plan.placed_at <= self.bug_window[1]
        mean = 2.6 if in_bug else 4.4
        if first_order and self.rng.random() < 0.8:
            channel = self.rng.choices((Channel.website_chat, Channel.email), (75, 25))[0]
            sent = await self.dispatch(
                customer,
                lifecycle,
                surveys.TRIGGER_FIRST_ORDER,
                FeedbackKind.discovery_source,
                plan.placed_at,
                plan.placed_at + self.hours(0.1, 20),
                0.65,
            )
            if sent is None:
                return
            dispatch, at = sent
            answer = self.rng.choice(DISCOVERY_ANSWERS[customer.source])
            await self.feedback(
                customer,
                lifecycle,
                FeedbackKind.discovery_source,
                FeedbackSource.proactive_survey,
                channel,
                at,
                text=answer,
                dispatch=dispatch,
            )
            score = self.score(FeedbackKind.csat, mean)
            at += timedelta(seconds=self.rng.randint(10, 60))
            await self.feedback(
                customer,
                lifecycle,
                FeedbackKind.csat,
                FeedbackSource.proactive_survey,
                channel,
                at,
                score=score,
                dispatch=dispatch,
            )
            if self.rng.random() < 0.45 or (in_bug and score <= 2):
                topic = "checkout_bug" if in_bug and score <= 3 else "purchase"
                await self.feedback(
                    customer,
                    lifecycle,
                    FeedbackKind.comment,
                    FeedbackSource.proactive_survey,
                    channel,
                    at + timedelta(seconds=40),
                    text=self.text(topic, _tone(FeedbackKind.csat, score)),
                    dispatch=dispatch,
                )
        elif in_bug and self.rng.random() < 0.35:
            channel = self.rng.choice((Channel.website_chat, Channel.email, Channel.social))
            source = (
                FeedbackSource.free_text
                if channel is Channel.website_chat
                else FeedbackSource.imported
            )
            await self.feedback(
                customer,
                lifecycle,
                FeedbackKind.complaint,
                source,
                channel,
                plan.placed_at + self.hours(0.05, 3),
                text=self.text("checkout_bug", "neg"),
            )
        elif self.rng.random() < 0.08:
            tone = self.rng.choices(("pos", "mixed", "neg"), (60, 25, 15))[0]
            kind = {"pos": FeedbackKind.praise, "neg": FeedbackKind.complaint}.get(
                tone, FeedbackKind.comment
            )
            await self.feedback(
                customer,
                lifecycle,
                kind,
                FeedbackSource.free_text,
                Channel.website_chat,
                plan.placed_at + self.hours(0.05, 2),
                text=self.text("purchase", tone),
            )

    async def cancel_feedback(self, plan: OrderPlan, lifecycle: Lifecycle) -> None:
        if plan.cancel_comment is None and self.rng.random() > 0.4:
            return
        assert plan.cancelled_at is not None
        text = plan.cancel_comment or self.rng.choice(
            (
                "Ordered the wrong colour, cancelling was quick and easy.",
                "Cancelled because delivery would take too long.",
                "Found it cheaper elsewhere, sorry.",
                "Easy cancellation in the chat, thanks.",
                "Accidentally ordered twice.",
            )
        )
        await self.feedback(
            plan.customer,
            lifecycle,
            FeedbackKind.comment,
            FeedbackSource.free_text,
            Channel.website_chat,
            plan.cancelled_at - timedelta(minutes=2),
            text=text,
        )

    async def in_transit_question(self, plan: OrderPlan, lifecycle: Lifecycle) -> None:
        """The customer asks the bot about the order and rates the answer."""
        chance = 0.05 if plan.subscription else 0.45 if plan.late else 0.18
        if plan.shipped_at is None or self.rng.random() > chance:
            return
        end = min(plan.delivered_at or self.now, self.now)
        at = plan.shipped_at + (end - plan.shipped_at) * self.rng.uniform(0.2, 0.95)
        late_now = plan.estimated_delivery is not None and at > plan.estimated_delivery
        trigger = "in_chat:delivery_problem" if late_now else "in_chat:order_status"
        if late_now:
            lifecycles.advance(lifecycle, Stage.support)
        sent = await self.dispatch(
            plan.customer, lifecycle, trigger, FeedbackKind.csat, at, at, 0.75
        )
        if sent is None:
            return
        dispatch, answered = sent
        score = self.score(FeedbackKind.csat, 2.7 if late_now else 4.3)
        await self.feedback(
            plan.customer,
            lifecycle,
            FeedbackKind.csat,
            FeedbackSource.chat_survey,
            Channel.website_chat,
            answered,
            score=score,
            dispatch=dispatch,
        )
        if self.rng.random() < 0.35:
            await self.feedback(
                plan.customer,
                lifecycle,
                FeedbackKind.comment,
                FeedbackSource.chat_survey,
                Channel.website_chat,
                answered + timedelta(seconds=30),
                text=self.text("in_chat", _tone(FeedbackKind.csat, score)),
                dispatch=dispatch,
            )

    async def delivery_feedback(self, plan: OrderPlan, lifecycle: Lifecycle) -> None:
        assert plan.delivered_at is not None and plan.carrier is not None
        if plan.delivery_survey is None and plan.support in (
            "damaged",
            "wrong_item",
            "box_damaged",
        ):
            plan.delivery_survey = False  # the customer complained first; support asks later
        if plan.delivery_survey is None:
            plan.delivery_survey = self.rng.random() < (0.1 if plan.subscription else 0.8)
        if not plan.delivery_survey:
            return
        created = plan.delivered_at + self.hours(2, 26)
        channel = self.rng.choices((Channel.website_chat, Channel.email), (70, 30))[0]
        sent = await self.dispatch(
            plan.customer,
            lifecycle,
            surveys.TRIGGER_ORDER_DELIVERED,
            FeedbackKind.csat,
            created,
            created + self.hours(0, 30),
            0.65 if plan.delivery_score is None else 1.0,
        )
        if sent is None:
            return
        dispatch, at = sent
        mean = DELIVERY_CSAT_MEAN[plan.carrier] - (1.4 if plan.late else 0.0)
        if plan.support in ("damaged", "box_damaged"):
            mean -= 1.2
        score = plan.delivery_score or self.score(FeedbackKind.csat, mean, 0.8)
        await self.feedback(
            plan.customer,
            lifecycle,
            FeedbackKind.csat,
            FeedbackSource.proactive_survey,
            channel,
            at,
            score=score,
            dispatch=dispatch,
        )
        if plan.delivery_comment or self.rng.random() < 0.45:
            text = plan.delivery_comment or self.text(
                "delivery", _tone(FeedbackKind.csat, score), plan
            )
            await self.feedback(
                plan.customer,
                lifecycle,
                FeedbackKind.comment,
                FeedbackSource.proactive_survey,
                channel,
                at + timedelta(seconds=self.rng.randint(20, 90)),
                text=text,
                dispatch=dispatch,
            )

    async def use_feedback(self, plan: OrderPlan, lifecycle: Lifecycle) -> None:
        """Reviews and posts after using the products (imported from other channels)."""
        assert plan.delivered_at is not None
        if plan.subscription is not None:
            return
        customer = plan.customer
        pilling = any(sku == PILLING_SKU for sku, *_ in plan.items)
        if self.rng.random() < (0.6 if pilling else 0.22):
            at = plan.delivered_at + self.hours(24, 24 * 25)
            if pilling:
                score, topic = self.score(FeedbackKind.csat, 2.3, 0.8), "pilling"
                plan.items.sort(key=lambda item: item[0] != PILLING_SKU)
            else:
                score, topic = self.score(FeedbackKind.csat, 4.3, 0.9), f"product_{plan.category}"
            # Product reviews: on the shop's own pages, or a review site (Trustpilot).
            where = self.rng.choices((Channel.storefront, Channel.review_site), (3, 1))[0]
            await self.feedback(
                customer,
                lifecycle,
                FeedbackKind.csat,
                FeedbackSource.imported,
                where,
                at,
                score=score,
                text=self.text(topic, _tone(FeedbackKind.csat, score), plan),
            )
        roll = self.rng.random()
        if roll < 0.06:
            tone = self.rng.choices(("pos", "neg"), (70, 30))[0]
            kind = FeedbackKind.praise if tone == "pos" else FeedbackKind.complaint
            topic = self.rng.choice((f"product_{plan.category}", "delivery"))
            await self.feedback(
                customer,
                lifecycle,
                kind,
                FeedbackSource.imported,
                Channel.social,
                plan.delivered_at + self.hours(5, 24 * 10),
                text=self.text(topic, tone, plan),
            )
        elif roll < 0.12:
            await self.feedback(
                customer,
                lifecycle,
                FeedbackKind.praise,
                FeedbackSource.free_text,
                Channel.website_chat,
                plan.delivered_at + self.hours(5, 24 * 12),
                text=self.text(f"product_{plan.category}", "pos", plan),
            )

    async def support(self, plan: OrderPlan, lifecycle: Lifecycle) -> datetime | None:
        """Contact about a problem (lifecycle enters support), then the post-support survey."""
        reason, at = plan.support, plan.support_at
        if reason is None or at is None or at > self.now:
            return None
        customer = plan.customer
        lifecycles.advance(lifecycle, Stage.support)
        channel = self.rng.choices(
            (Channel.website_chat, Channel.call_center, Channel.email, Channel.social),
            (45, 25, 22, 8),
        )[0]
        if plan.complaint:
            channel = Channel.website_chat
        source = (
            FeedbackSource.free_text if channel is Channel.website_chat else FeedbackSource.imported
        )
        await self.feedback(
            customer,
            lifecycle,
            FeedbackKind.complaint,
            source,
            channel,
            at,
            text=plan.complaint or self.fill(self.rng.choice(COMPLAINTS[reason]), plan),
        )
        resolved = at + self.hours(1.5, 70 if reason != "return" else 30)
        if resolved > self.now:
            return None
        dispatch: SurveyDispatch | None = None
        if channel is Channel.website_chat:
            # The agent resolved the escalated chat: the bot asks the post-support survey.
            sent = await self.dispatch(
                customer,
                lifecycle,
                surveys.TRIGGER_ESCALATION_RESOLVED,
                FeedbackKind.csat,
                resolved,
                resolved + self.hours(0, 2),
                0.75 if plan.support_score is None else 1.0,
            )
            if sent is None:
                return resolved
            dispatch, answered = sent
            source, survey_channel = FeedbackSource.chat_survey, Channel.support
        elif channel in (Channel.call_center, Channel.email) and self.rng.random() < 0.5:
            # The call center's / email team's own survey, imported.
            answered = resolved + self.hours(0.1, 20)
            source, survey_channel = FeedbackSource.imported, channel
        else:
            return resolved
        mean = {"return": 3.5, "billing": 3.3, "late": 2.6}.get(reason, 2.9)
        csat = plan.support_score or self.score(FeedbackKind.csat, mean, 1.2)
        await self.feedback(
            customer,
            lifecycle,
            FeedbackKind.csat,
            source,
            survey_channel,
            answered,
            score=csat,
            dispatch=dispatch,
        )
        ces = max(1, min(7, round(7.9 - 1.1 * csat + self.rng.gauss(0, 0.8))))
        await self.feedback(
            customer,
            lifecycle,
            FeedbackKind.ces,
            source,
            survey_channel,
            answered + timedelta(seconds=25),
            score=ces,
            dispatch=dispatch,
        )
        if plan.support_comment or self.rng.random() < 0.6:
            text = plan.support_comment or self.text(
                "support", _tone(FeedbackKind.csat, csat), plan
            )
            await self.feedback(
                customer,
                lifecycle,
                FeedbackKind.comment,
                source,
                survey_channel,
                answered + timedelta(seconds=70),
                text=text,
                dispatch=dispatch,
            )
        return resolved

    async def subscription_events(self, plan: OrderPlan, lifecycle: Lifecycle) -> None:
        sub = plan.subscription
        assert sub is not None and plan.period_end is not None
        customer = plan.customer
        is_renewal = plan.placed_at > sub.period_starts[0]
        if is_renewal and plan.delivered_at is not None and self.rng.random() < 0.75:
            created = plan.delivered_at + self.hours(6, 48)
            channel = self.rng.choices((Channel.website_chat, Channel.email), (65, 35))[0]
            sent = await self.dispatch(
                customer,
                lifecycle,
                surveys.TRIGGER_SUBSCRIPTION_RENEWED,
                FeedbackKind.nps,
                created,
                created + self.hours(0, 20),
                0.6,
            )
            if sent is not None:
                dispatch, at = sent
                mean = 6.5 if plan.placed_at >= self.price_change else 8.7
                score = self.score(FeedbackKind.nps, mean, 1.5)
                await self.feedback(
                    customer,
                    lifecycle,
                    FeedbackKind.nps,
                    FeedbackSource.proactive_survey,
                    channel,
                    at,
                    score=score,
                    dispatch=dispatch,
                )
                if self.rng.random() < 0.6:
                    await self.feedback(
                        customer,
                        lifecycle,
                        FeedbackKind.comment,
                        FeedbackSource.proactive_survey,
                        channel,
                        at + timedelta(seconds=45),
                        text=self.text("subscription", _tone(FeedbackKind.nps, score), plan),
                        dispatch=dispatch,
                    )
        if plan.last_period and sub.paused_at is not None and self.rng.random() < 0.6:
            await self.feedback(
                customer,
                lifecycle,
                FeedbackKind.comment,
                FeedbackSource.free_text,
                Channel.website_chat,
                sub.paused_at,
                text=self.rng.choice(PAUSE_COMMENTS),
            )
        if plan.last_period and sub.cancelled_at is not None:
            sent = await self.dispatch(
                customer,
                lifecycle,
                surveys.TRIGGER_SUBSCRIPTION_CANCELLED,
                FeedbackKind.churn_reason,
                sub.cancelled_at,
                sub.cancelled_at + timedelta(seconds=20),
                0.85,
                exempt=True,
            )
            if sent is not None:
                dispatch, at = sent
                pool = "price" if sub.cancelled_at >= self.price_change else "other"
                if self.rng.random() < 0.25:
                    pool = "other" if pool == "price" else "price"
                await self.feedback(
                    customer,
                    lifecycle,
                    FeedbackKind.churn_reason,
                    FeedbackSource.chat_survey,
                    Channel.website_chat,
                    at,
                    text=self.rng.choice(CHURN_REASONS[pool]),
                    dispatch=dispatch,
                )
        if plan.period_end <= self.now:
            lifecycles.close(lifecycle, "period_ended", plan.period_end)

    async def open_journey(self, customer: CustomerPlan, opened_at: datetime) -> None:
        """A customer still browsing: open discovery/research lifecycle, no order."""
        lifecycle = Lifecycle(
            customer_id=customer.id,
            kind=LifecycleKind.one_time,
            stage=Stage.discovery,
            opened_at=opened_at,
            acquisition_channel=customer.source,
        )
        self.session.add(lifecycle)
        await self.session.flush()
        self.counts.lifecycle_ids.add(lifecycle.id)
        span = (self.now - opened_at).total_seconds() / 3600
        if self.rng.random() < 0.5:
            await self.feedback(
                customer,
                lifecycle,
                FeedbackKind.comment,
                FeedbackSource.imported,
                Channel.social,
                opened_at + self.hours(0.1, span * 0.3),
                text=self.text("discovery", "mixed"),
            )
        if self.rng.random() < 0.65:
            lifecycles.advance(lifecycle, Stage.research)
            await self.feedback(
                customer,
                lifecycle,
                FeedbackKind.comment,
                FeedbackSource.free_text,
                Channel.website_chat,
                opened_at + self.hours(span * 0.35, span * 0.9),
                text=self.text("research", "mixed"),
            )
