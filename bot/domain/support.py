"""Support flows answered from stored orders and subscriptions (SPEC §5).

Each flow returns a `FlowResult`: the reply, and what the conversation does next
(ask for confirmation, collect an address, run the satisfaction survey, or nothing).
State-changing flows only describe the change; `apply_confirmed` performs it.
"""

from __future__ import annotations

import enum
import re
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
     "cancel_order", "change_address", "billing_issue"}
)  # fmt: skip
SUBSCRIPTION_FLOWS = frozenset({"pause_subscription", "cancel_subscription"})
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
    session: AsyncSession, flow: str, order: Order, return_window_days: int
) -> FlowResult:
    lifecycle = await lifecycles.lifecycle_for_order(session, order)
    if flow in {
        "delivery_problem",
        "damaged_item",
        "return_item",
        "refund_status",
        "billing_issue",
    }:
        lifecycles.advance(lifecycle, Stage.support)
    handler = _ORDER_HANDLERS[flow]
    return handler(order, return_window_days)


def order_status(order: Order, _window: int) -> FlowResult:
    number = order.number
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


def delivery_problem(order: Order, _window: int) -> FlowResult:
    if order.status is OrderStatus.placed:
        text = f"Order {order.number} has not shipped yet; it usually leaves our warehouse within 2 working days. You'll get the tracking number by email."
    elif order.status is OrderStatus.shipped:
        late = order.estimated_delivery is not None and order.estimated_delivery < utcnow()
        text = (
            f"Sorry, order {order.number} is running late. I've asked {order.carrier or 'the carrier'} to trace it.{_tracking(order)} If it hasn't arrived in 3 working days we'll send a replacement or refund you."
            if late
            else f"Order {order.number} is on its way and due by {_date(order.estimated_delivery)}.{_tracking(order)}"
        )
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
        f"I'm sorry your order {order.number} arrived like that. I can start a free return for {_items(order)} and you'll get a full refund or replacement. Shall I start it?",
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
        f"Order {order.number} ({_items(order)}) can be returned free of charge. Shall I start the return?",
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


def cancel_order(order: Order, _window: int) -> FlowResult:
    if order.status is OrderStatus.placed:
        return _confirm(
            f"Order {order.number} ({_items(order)}, {_money(order)}) hasn't shipped yet. Shall I cancel it?",
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


_ORDER_HANDLERS = {
    "order_status": order_status,
    "delivery_problem": delivery_problem,
    "damaged_item": damaged_item,
    "return_item": return_item,
    "refund_status": refund_status,
    "cancel_order": cancel_order,
    "change_address": change_address,
    "billing_issue": billing_issue,
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


def subscription_flow(flow: str, subscription: Subscription | None) -> FlowResult:
    if subscription is None:
        return FlowResult("I can't find an active subscription on your account.")
    if flow == "pause_subscription":
        if subscription.status is SubscriptionStatus.paused:
            return FlowResult(
                f"Your {subscription.plan} subscription is already paused.", NextStep.survey
            )
        return _confirm(
            f"Shall I pause your {subscription.plan} subscription? Nothing will be charged or shipped after {_date(subscription.current_period_end)} until you resume it.",
            "pause_subscription",
        )
    return _confirm(
        f"Shall I cancel your {subscription.plan} subscription ({subscription.price:.2f} {subscription.currency} a month)? You'll keep the current box; no further charges.",
        "cancel_subscription",
    )


# --- confirmed changes --------------------------------------------------------------------


async def apply_confirmed(
    session: AsyncSession,
    action: str,
    customer: Customer,
    order: Order | None,
    subscription: Subscription | None,
    new_address: str | None = None,
    return_window_days: int = 30,
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
    elif action in {"pause_subscription", "cancel_subscription"}:
        if subscription is None:
            return FlowResult("I can't find an active subscription on your account.")
        target_type, target_id = "subscription", str(subscription.id)
        if action == "pause_subscription":
            subscription.status, subscription.paused_at = SubscriptionStatus.paused, now
            reply = f"Done: your {subscription.plan} subscription is paused. Tell me any time to resume it."
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
