"""Support flows answered from stored orders and subscriptions (SPEC §5).

Each flow returns a `FlowResult`: the reply, and what the conversation does next
(ask for confirmation, collect an address, run the satisfaction survey, or nothing).
State-changing flows only describe the change; `apply_confirmed` performs it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import conversations
from bot.domain import lifecycle as lifecycles
from bot.storage import repositories
from bot.storage.models import (
    AuditLog,
    Conversation,
    Customer,
    Order,
    OrderStatus,
    Stage,
    Subscription,
    SubscriptionStatus,
    utcnow,
)

EMAIL_PATTERN = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
ORDER_NUMBER_PATTERN = re.compile(r"#?\b[Aa]?\d{5}\b")
MAX_ADDRESS_CHARS = 300

ORDER_FLOWS = frozenset(
    {"order_status", "delivery_problem", "damaged_item", "return_item", "refund_status",
     "cancel_order", "change_address", "billing_issue", "request_refund"}
)  # fmt: skip
SUBSCRIPTION_FLOWS = frozenset({"pause_subscription", "resume_subscription", "cancel_subscription"})
SUPPORT_FLOWS = ORDER_FLOWS | SUBSCRIPTION_FLOWS


class NextStep(str, enum.Enum):
    done = "done"
    survey = "survey"
    confirm = "confirm"
    address = "address"
    churn_survey = "churn_survey"


@dataclass
class FlowResult:
    reply: str
    next_step: NextStep = NextStep.done
    pending_action: str | None = None
    buttons: list[dict[str, str]] = field(default_factory=list)


YES_NO = [{"title": "Yes", "payload": "yes"}, {"title": "No", "payload": "no"}]


def _confirm(question: str, action: str) -> FlowResult:
    return FlowResult(question, NextStep.confirm, pending_action=action, buttons=YES_NO)


def _date(value: datetime | None) -> str:
    return value.strftime("%-d %B %Y") if value else "unknown"


def _money(order: Order) -> str:
    return f"{order.total:.2f} {order.currency}"


def _items(order: Order) -> str:
    return ", ".join(f"{item.quantity}× {item.name}" for item in order.items) or "no items"


def _tracking(order: Order) -> str:
    if not order.tracking_number:
        return ""
    return f" Tracking: {order.carrier or 'carrier'} {order.tracking_number}."


# --- identity --------------------------------------------------------------------------


class VerifyStatus(str, enum.Enum):
    ok = "ok"
    unknown_order = "unknown_order"
    email_mismatch = "email_mismatch"


@dataclass(frozen=True)
class Verification:
    status: VerifyStatus
    order: Order | None = None


def extract_email(text: str) -> str | None:
    match = EMAIL_PATTERN.search(text or "")
    return match.group(0).lower() if match else None


def extract_order_number(text: str) -> str | None:
    match = ORDER_NUMBER_PATTERN.search(text or "")
    return repositories.normalise_order_number(match.group(0)) if match else None


async def verify(
    session: AsyncSession, conversation: Conversation, order_number: str, email: str
) -> Verification:
    """Order number + email identify the customer; the conversation remembers both."""
    order = await repositories.order_by_number(session, order_number)
    if order is None:
        return Verification(VerifyStatus.unknown_order)
    if (order.customer.email or "").lower() != email.strip().lower():
        return Verification(VerifyStatus.email_mismatch)
    stand_in = None
    if conversation.customer_id not in (None, order.customer_id):
        if not await conversations.is_anonymous(session, conversation.customer_id):
            # Already tied to another customer (signed in, or verified before): not merged.
            return Verification(VerifyStatus.email_mismatch)
        stand_in = conversation.customer_id  # made for feedback given before verifying
    conversation.customer_id = order.customer_id
    conversation.order_id = order.id
    conversation.identified_by = conversation.identified_by or "order"
    await session.flush()
    if stand_in is not None:
        lifecycle = await lifecycles.lifecycle_for_order(session, order)
        await conversations.merge_anonymous(session, stand_in, order.customer_id, lifecycle)
    return Verification(VerifyStatus.ok, order)


# --- order flows -------------------------------------------------------------------------


async def run_order_flow(
    session: AsyncSession,
    flow: str,
    order: Order,
    return_window_days: int,
    now: datetime | None = None,
    late_policy: LatePolicy | None = None,
) -> FlowResult:
    lifecycle = await lifecycles.lifecycle_for_order(session, order)
    if flow in {
        "delivery_problem",
        "damaged_item",
        "return_item",
        "refund_status",
        "billing_issue",
        "request_refund",
    }:
        lifecycles.advance(lifecycle, Stage.support)
    if flow == "order_status":
        return order_status(order, return_window_days, now=now, policy=late_policy)
    if flow == "delivery_problem":
        return delivery_problem(order, return_window_days, now=now, policy=late_policy)
    handler = _ORDER_HANDLERS[flow]
    return handler(order, return_window_days)


# --- late parcels (issue #17; the table is in docs/decisions.md) ---------------------------

PERSON_BUTTON = {"title": "Talk to a person", "payload": "I want to talk to a person"}


@dataclass(frozen=True)
class LatePolicy:
    """What a shipped parcel past its estimated delivery date is offered, by days late:
    under `grace_days` wait (a trace if it still hasn't come by then); from `grace_days` a
    trace; from `replacement_after_days` a replacement or a refund; a person at any time."""

    grace_days: int = 2
    replacement_after_days: int = 7

    def step(self, due: datetime, late: int) -> tuple[LateStep, datetime | None]:
        """The step a parcel `late` days past `due` is at, and when the next one starts
        (None at the last): the one home of the table for the status and delivery replies."""
        if late < self.grace_days:
            return LateStep.wait, due + timedelta(days=self.grace_days)
        if late < self.replacement_after_days:
            return LateStep.trace, due + timedelta(days=self.replacement_after_days)
        return LateStep.replace_or_refund, None


class LateStep(str, enum.Enum):
    wait = "wait"
    trace = "trace"
    replace_or_refund = "replace_or_refund"


def days_late(order: Order, now: datetime | None = None) -> int:
    """Whole calendar days (UTC) a shipped parcel is past its estimated delivery date; 0 if
    it is not (yet) late or not in transit."""
    if order.status is not OrderStatus.shipped or order.estimated_delivery is None:
        return 0
    return max(0, ((now or utcnow()).date() - order.estimated_delivery.date()).days)


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _late_status(order: Order, late: int, policy: LatePolicy) -> FlowResult:
    due, carrier = order.estimated_delivery, order.carrier or "the carrier"
    assert due is not None
    head = f"Order {order.number} ({_items(order)}) shipped on {_date(order.shipped_at)} and was due on {_date(due)}, so it is {_days(late)} late.{_tracking(order)}"
    step, next_step_on = policy.step(due, late)
    until = _date(next_step_on)
    if step is LateStep.wait:
        return FlowResult(
            f"{head} Late parcels usually turn up within {_days(policy.grace_days)} of the date; if it hasn't come by {until}, I can ask {carrier} to trace it.",
            buttons=[PERSON_BUTTON],
        )
    if step is LateStep.trace:
        return FlowResult(
            f"{head} I can ask {carrier} to trace it, and if it hasn't arrived by {until} we'll send a replacement or refund you.",
            buttons=[{"title": "Trace my parcel", "payload": "/delivery_problem"}, PERSON_BUTTON],
        )
    return FlowResult(
        f"{head} That's too long to keep waiting: we can send you a replacement or refund you, and a person from our team arranges it.",
        buttons=[{"title": "Arrange a replacement or refund", "payload": PERSON_BUTTON["payload"]}],
    )


def _late_delivery(order: Order, late: int, policy: LatePolicy) -> FlowResult:
    due, carrier = order.estimated_delivery, order.carrier or "the carrier"
    assert due is not None
    step, next_step_on = policy.step(due, late)
    until = _date(next_step_on)
    if step is LateStep.wait:
        return FlowResult(
            f"Sorry, order {order.number} is running late: it was due on {_date(due)}. Late parcels usually turn up within {_days(policy.grace_days)} of the date, so please give it until {until}; if it hasn't come by then, tell me and I'll ask {carrier} to trace it.{_tracking(order)}",
            buttons=[PERSON_BUTTON],
        )
    if step is LateStep.trace:
        return FlowResult(
            f"Sorry, order {order.number} is running late: it was due on {_date(due)}. I've asked {carrier} to trace it.{_tracking(order)} If it hasn't arrived by {until}, we'll send a replacement or refund you.",
            NextStep.survey,
        )
    return FlowResult(
        f"Sorry, order {order.number} is {_days(late)} late: it was due on {_date(due)}. We'll send you a replacement or refund you, whichever you prefer; a person from our team arranges it.{_tracking(order)}",
        buttons=[{"title": "Arrange a replacement or refund", "payload": PERSON_BUTTON["payload"]}],
    )


def order_status(
    order: Order, _window: int, now: datetime | None = None, policy: LatePolicy | None = None
) -> FlowResult:
    number = order.number
    late = days_late(order, now)
    if late:
        return _late_status(order, late, policy or LatePolicy())
    if order.status is OrderStatus.placed:
        text = f"Order {number} ({_items(order)}) was placed on {_date(order.placed_at)} and is being packed; it has not shipped yet."
    elif order.status is OrderStatus.shipped:
        text = f"Order {number} ({_items(order)}) shipped on {_date(order.shipped_at)} and should arrive by {_date(order.estimated_delivery)}.{_tracking(order)}"
    elif order.status is OrderStatus.delivered:
        text = f"Order {number} ({_items(order)}) was delivered on {_date(order.delivered_at)}.{_tracking(order)}"
    elif order.status is OrderStatus.returned:
        text = f"Order {number} was returned to us; the refund is being processed."
    elif order.status is OrderStatus.refunded:
        text = f"Order {number} was refunded on {_date(order.refunded_at)} ({_money(order)})."
    else:
        text = f"Order {number} was cancelled on {_date(order.cancelled_at)}; you were not charged."
    return FlowResult(text, NextStep.survey)


def delivery_problem(
    order: Order, _window: int, now: datetime | None = None, policy: LatePolicy | None = None
) -> FlowResult:
    late = days_late(order, now)
    if late:
        return _late_delivery(order, late, policy or LatePolicy())
    if order.status is OrderStatus.placed:
        text = f"Order {order.number} has not shipped yet; it usually leaves our warehouse within 2 working days. You'll get the tracking number by email."
    elif order.status is OrderStatus.shipped:
        text = f"Order {order.number} is on its way and due by {_date(order.estimated_delivery)}.{_tracking(order)}"
    elif order.status is OrderStatus.delivered:
        text = f"Order {order.number} shows as delivered on {_date(order.delivered_at)}. Please check with neighbours or your safe place; I've opened a trace with {order.carrier or 'the carrier'} and we'll email you within 2 working days."
    else:
        text = f"Order {order.number} is {order.status.value}, so there's no delivery in progress."
    return FlowResult(text, NextStep.survey)


def damaged_item(order: Order, window: int) -> FlowResult:
    if order.status is not OrderStatus.delivered:
        return FlowResult(
            f"Order {order.number} is {order.status.value}; I can only arrange a return for delivered orders.",
            NextStep.survey,
        )
    eligible = return_eligibility(order, window)
    if eligible:
        return FlowResult(eligible, NextStep.survey)
    return _confirm(
        f"I'm sorry your order {order.number} arrived like that. Start a free return of order {order.number} ({_items(order)}, {_money(order)})? You'll get a full refund or a replacement.",
        "return_item",
    )


def return_eligibility(order: Order, window: int) -> str | None:
    """Why a return cannot be started, or None if it can."""
    if order.status is OrderStatus.cancelled:
        return f"Order {order.number} was cancelled before it shipped, so there is nothing to return and you were not charged."
    if order.status in (OrderStatus.returned, OrderStatus.refunded):
        return f"Order {order.number} has already been returned."
    if order.status in (OrderStatus.placed, OrderStatus.shipped):
        return f"Order {order.number} hasn't been delivered yet. You can return it within {window} days of delivery."
    if order.return_requested_at is not None:
        return f"A return for order {order.number} is already open since {_date(order.return_requested_at)}; use the label we emailed you."
    if order.delivered_at and order.delivered_at < utcnow() - timedelta(days=window):
        return f"Order {order.number} was delivered on {_date(order.delivered_at)}, which is outside our {window}-day return window. If the item is faulty, ask for a person and we'll look at a warranty repair."
    return None


def return_item(order: Order, window: int) -> FlowResult:
    refusal = return_eligibility(order, window)
    if refusal:
        return FlowResult(refusal, NextStep.survey)
    return _confirm(
        f"Start a free return of order {order.number} ({_items(order)}, {_money(order)})?",
        "return_item",
    )


def refund_status(order: Order, _window: int) -> FlowResult:
    if order.status is OrderStatus.refunded:
        text = f"Your refund of {_money(order)} for order {order.number} was issued on {_date(order.refunded_at)}. It can take 3–5 working days to show on your statement."
    elif order.status is OrderStatus.returned:
        text = f"We received your return of order {order.number}; the refund of {_money(order)} will be issued within 5 working days."
    elif order.return_requested_at is not None:
        text = f"Your return for order {order.number} was opened on {_date(order.return_requested_at)}. We refund as soon as the parcel reaches us."
    elif order.status is OrderStatus.cancelled:
        text = f"Order {order.number} was cancelled before payment was taken, so there is nothing to refund."
    else:
        text = f"There's no refund on order {order.number}: it is {order.status.value} and no return has been started."
    return FlowResult(text, NextStep.survey)


def request_refund(order: Order, window: int) -> FlowResult:
    """Money back now: a refund already under way is reported; otherwise the way to one
    (cancel an unshipped order, return a delivered one), confirmed first."""
    if (
        order.status in (OrderStatus.refunded, OrderStatus.returned, OrderStatus.cancelled)
        or order.return_requested_at is not None
    ):
        return refund_status(order, window)
    if order.status is OrderStatus.placed:
        return _confirm(
            f"Order {order.number} hasn't shipped yet, so the quickest way to your money is to cancel it. Cancel order {order.number} ({_items(order)}, {_money(order)})? You won't be charged.",
            "cancel_order",
        )
    if order.status is OrderStatus.shipped:
        return FlowResult(
            f"Order {order.number} is on its way. Once it's delivered you can return it within {window} days for a full refund of {_money(order)}.",
            NextStep.survey,
        )
    refusal = return_eligibility(order, window)
    if refusal:
        return FlowResult(refusal, NextStep.survey)
    return _confirm(
        f"Return order {order.number} ({_items(order)}) for a refund of {_money(order)}? We'll email you a prepaid label and refund your original payment method within 5 working days of the parcel reaching us.",
        "return_item",
    )


def cancel_order(order: Order, _window: int) -> FlowResult:
    if order.status is OrderStatus.placed:
        return _confirm(
            f"Cancel order {order.number} ({_items(order)}, {_money(order)})? It hasn't shipped yet, so you won't be charged.",
            "cancel_order",
        )
    if order.status is OrderStatus.cancelled:
        return FlowResult(f"Order {order.number} is already cancelled.", NextStep.survey)
    after = {
        OrderStatus.shipped: "Once it's delivered you can return it within our return window.",
        OrderStatus.delivered: "You can still return it within our return window.",
    }.get(order.status, "")
    return FlowResult(
        f"Order {order.number} is already {order.status.value}, so it can't be cancelled any more. {after}".strip(),
        NextStep.survey,
    )


def change_address(order: Order, _window: int) -> FlowResult:
    if order.status is OrderStatus.placed:
        return FlowResult(
            f"Order {order.number} is going to: {order.shipping_address}. What's the new delivery address?",
            NextStep.address,
        )
    return FlowResult(
        f"Order {order.number} is {order.status.value}, so its address can't be changed any more.",
        NextStep.survey,
    )


def billing_issue(order: Order, _window: int) -> FlowResult:
    if order.status is OrderStatus.cancelled:
        return FlowResult(
            f"Order {order.number} was cancelled before payment was taken, so you weren't charged for it. If you still see an amount on your statement, it's a pre-authorisation that disappears within 3–5 days; say 'agent' if it doesn't.",
            NextStep.survey,
        )
    return FlowResult(
        f"Order {order.number} was charged once: {_money(order)} on {_date(order.placed_at)}. A second pending amount is usually a card pre-authorisation that disappears within 3–5 days; your invoice is in the order email. If something still looks wrong, say 'agent' and a person will check it.",
        NextStep.survey,
    )


_ORDER_HANDLERS: dict[str, Callable[[Order, int], FlowResult]] = {
    "order_status": order_status,
    "delivery_problem": delivery_problem,
    "damaged_item": damaged_item,
    "return_item": return_item,
    "refund_status": refund_status,
    "cancel_order": cancel_order,
    "change_address": change_address,
    "billing_issue": billing_issue,
    "request_refund": request_refund,
}


def validate_address(text: str) -> str | None:
    """A plausible postal address (some letters and a number), trimmed; None otherwise."""
    address = " ".join((text or "").split())
    if not 8 <= len(address) <= MAX_ADDRESS_CHARS:
        return None
    if not re.search(r"\d", address) or not re.search(r"[A-Za-z]{3}", address):
        return None
    return address


def confirm_address(order: Order, address: str) -> FlowResult:
    return _confirm(
        f"Change the delivery address of order {order.number} to: {address}?", "change_address"
    )


# --- subscription flows ----------------------------------------------------------------


def subscription_flow(
    flow: str, subscription: Subscription | None, pause_until: datetime | None = None
) -> FlowResult:
    """Pause (until a date, or until resumed), resume or cancel, each confirmed first."""
    if subscription is None:
        return FlowResult("I can't find an active subscription on your account.")
    plan = subscription.plan
    if flow == "pause_subscription":
        if subscription.status is SubscriptionStatus.paused:
            until = f" until {_date(subscription.resume_on)}" if subscription.resume_on else ""
            return FlowResult(
                f"Your {plan} subscription is already paused{until}.", NextStep.survey
            )
        if pause_until is not None:
            return _confirm(
                f"Pause your {plan} subscription until {_date(pause_until)}? Nothing will be charged or shipped until then; deliveries restart on {_date(pause_until)}.",
                "pause_subscription",
            )
        return _confirm(
            f"Pause your {plan} subscription? Nothing will be charged or shipped after {_date(subscription.current_period_end)} until you resume it.",
            "pause_subscription",
        )
    if flow == "resume_subscription":
        if subscription.status is SubscriptionStatus.active:
            return FlowResult(
                f"Your {plan} subscription is active, nothing to resume; your next box comes after {_date(subscription.current_period_end)}.",
                NextStep.survey,
            )
        return _confirm(
            f"Resume your {plan} subscription now? Deliveries restart with the next box and the {subscription.price:.2f} {subscription.currency} monthly charge starts again.",
            "resume_subscription",
        )
    return _confirm(
        f"Cancel your {plan} subscription ({subscription.price:.2f} {subscription.currency} a month)? You'll keep the current box; no further charges.",
        "cancel_subscription",
    )


MAX_PAUSE_DAYS = 366
_SKIP = re.compile(r"\bskip(ping)?\b")


def parse_pause_until(text: str, now: datetime) -> datetime | None:
    """The day deliveries restart after a pause the customer dated, or None.

    "pause until March" → 1 March; "skip January" → 1 February (the month after the one
    skipped); "pause till the 15th of January" → 15 January. Dates are read with
    dateparser (future dates preferred, the first of a month when only a month is named);
    past dates and dates more than a year ahead are ignored.
    """
    from dateparser.search import search_dates  # slow to import; only pauses need it

    found = search_dates(
        text or "",
        languages=["en"],
        settings={
            "PREFER_DATES_FROM": "future",
            "PREFER_DAY_OF_MONTH": "first",
            "RELATIVE_BASE": now.replace(tzinfo=None),
            "RETURN_AS_TIMEZONE_AWARE": False,
        },
    )
    if not found:
        return None
    phrase, value = found[-1]
    day = datetime(value.year, value.month, value.day, tzinfo=now.tzinfo)
    if _SKIP.search(text.lower()) and not re.search(r"\d", phrase):
        # A month skipped: deliveries restart on the first of the next month ("skip
        # December" said in December is this December, not next year's).
        if (day.year, day.month) == (now.year + 1, now.month):
            day = day.replace(year=now.year)
        day = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=now.tzinfo)
    if day.date() <= now.date() or day > now + timedelta(days=MAX_PAUSE_DAYS):
        return None
    return day


# --- confirmed changes --------------------------------------------------------------------


async def apply_confirmed(
    session: AsyncSession,
    action: str,
    customer: Customer,
    order: Order | None,
    subscription: Subscription | None,
    new_address: str | None = None,
    return_window_days: int = 30,
    pause_until: datetime | None = None,
) -> FlowResult:
    """Carry out a change the customer confirmed, and audit it.

    Each change re-checks that it is still allowed: the order may have moved on
    between the question and the "yes".
    """
    now = utcnow()
    details: dict[str, str] = {}
    if action in {"cancel_order", "return_item", "change_address"}:
        if order is None:
            return FlowResult(
                "I've lost track of which order you meant; please tell me the order number again."
            )
        lifecycle = await lifecycles.lifecycle_for_order(session, order)
        target_type, target_id = "order", order.number
        if action == "cancel_order":
            if order.status is not OrderStatus.placed:
                return FlowResult(
                    f"Order {order.number} has just shipped, so it can no longer be cancelled.",
                    NextStep.survey,
                )
            order.status, order.cancelled_at = OrderStatus.cancelled, now
            lifecycles.sync_with_order(lifecycle, order)
            reply = f"Done: order {order.number} is cancelled. You won't be charged."
        elif action == "return_item":
            refusal = return_eligibility(order, return_window_days)
            if refusal:
                return FlowResult(refusal, NextStep.survey)
            order.return_requested_at = now
            lifecycles.advance(lifecycle, Stage.support)
            reply = f"Your return for order {order.number} is started. A prepaid label is on its way to {customer.email}; drop the parcel off within 14 days and we'll refund {_money(order)}."
        else:
            if order.status is not OrderStatus.placed or not new_address:
                return FlowResult(
                    f"Order {order.number} has just shipped, so its address can no longer be changed.",
                    NextStep.survey,
                )
            details = {"from": order.shipping_address, "to": new_address}
            order.shipping_address = new_address
            reply = f"Done: order {order.number} will be delivered to {new_address}."
    elif action in {"pause_subscription", "resume_subscription", "cancel_subscription"}:
        if subscription is None:
            return FlowResult("I can't find an active subscription on your account.")
        target_type, target_id = "subscription", str(subscription.id)
        if action == "pause_subscription":
            subscription.status, subscription.paused_at = SubscriptionStatus.paused, now
            subscription.resume_on = pause_until
            if pause_until is not None:
                details = {"resume_on": pause_until.date().isoformat()}
                reply = f"Done: your {subscription.plan} subscription is paused until {_date(pause_until)}. Deliveries restart on {_date(pause_until)}; tell me any time if you want them back sooner."
            else:
                reply = f"Done: your {subscription.plan} subscription is paused. Tell me any time to resume it."
        elif action == "resume_subscription":
            if subscription.status is not SubscriptionStatus.paused:
                return FlowResult(
                    f"Your {subscription.plan} subscription is already active.", NextStep.survey
                )
            subscription.status, subscription.paused_at = SubscriptionStatus.active, None
            subscription.resume_on = None
            reply = f"Done: your {subscription.plan} subscription is active again. Deliveries restart with the next box, and you'll be charged {subscription.price:.2f} {subscription.currency} a month again."
        else:
            subscription.status, subscription.cancelled_at = SubscriptionStatus.cancelled, now
            reply = f"Done: your {subscription.plan} subscription is cancelled; there will be no further charges."
            session.add(_audit(customer, action, target_type, target_id, details))
            await session.flush()
            return FlowResult(reply, NextStep.churn_survey)
    else:
        return FlowResult("Okay.")
    session.add(_audit(customer, action, target_type, target_id, details))
    await session.flush()
    return FlowResult(reply, NextStep.survey)


def _audit(
    customer: Customer, action: str, target_type: str, target_id: str, details: dict[str, str]
) -> AuditLog:
    return AuditLog(
        actor=f"customer:{customer.id}",
        action=action,
        target_type=target_type,
        target_id=target_id,
        details={"via": "chat", **details},
    )
