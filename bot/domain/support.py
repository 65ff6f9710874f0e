"""Support flows answered from stored orders and subscriptions (SPEC §5).

Each flow returns a `FlowResult`: the reply, and what the conversation does next
(ask for confirmation, collect an address, run the satisfaction survey, or nothing).
State-changing flows only describe the change; `apply_confirmed` performs it.
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import audit, conversations, intents, returns, texts
from bot.domain import lifecycle as lifecycles
from bot.domain.enums import OrderStatus, Stage, SubscriptionStatus
from bot.storage import repositories
from bot.storage.models import Conversation, Customer, Order, Subscription, utcnow

EMAIL_PATTERN = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
ORDER_NUMBER_PATTERN = re.compile(r"#?\b[Aa]?\d{5}\b")
MAX_ADDRESS_CHARS = 300

SUBSCRIPTION_FLOWS = frozenset({"pause_subscription", "resume_subscription", "cancel_subscription"})
ORDER_FLOWS = frozenset(intents.SUPPORT_REQUESTS) - SUBSCRIPTION_FLOWS
SUPPORT_FLOWS = frozenset(intents.SUPPORT_REQUESTS)


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
# "Pause instead" at a cancellation: a yes that switches the change to a pause (the entity
# is read by actions/support.py ActionResolvePending).
SWITCH_ENTITY = "switch_to"
PAUSE_INSTEAD_PAYLOAD = '/affirm{"switch_to":"pause_subscription"}'


def _confirm(question: str, action: str) -> FlowResult:
    return FlowResult(question, NextStep.confirm, pending_action=action, buttons=YES_NO)


def format_date(value: datetime | None) -> str:
    return value.strftime("%-d %B %Y") if value else texts.render("utter_date_unknown")


def _money(order: Order) -> str:
    return f"{order.total:.2f} {order.currency}"


def _items(order: Order) -> str:
    return ", ".join(f"{item.quantity}× {item.name}" for item in order.items) or texts.render(
        "utter_order_no_items"
    )


def _tracking(order: Order) -> str:
    if not order.tracking_number:
        return ""
    carrier = order.carrier or texts.render("utter_order_tracking_carrier")
    return texts.render("utter_order_tracking", carrier=carrier, number=order.tracking_number)


def _carrier(order: Order) -> str:
    return order.carrier or texts.render("utter_order_the_carrier")


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
    text: str = "",
    lost: bool = False,
) -> FlowResult:
    """The answer to order request `flow`; `lost`: the customer asks for a new parcel or
    their money for a delivered one they say never came (bot/domain/chat.py)."""
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
        return delivery_problem(order, return_window_days, now=now, policy=late_policy, said=text)
    if flow == "refund_status":
        return refund_status(order, return_window_days, now=now, said=text)
    if lost and order.status is OrderStatus.delivered:
        return lost_parcel(order)
    late = days_late(order, now) if flow == "request_refund" else 0
    if late:
        # Money back for a parcel that never came: the late-parcel table's step (a trace,
        # then a replacement or refund), not "return it once it's delivered".
        return _late_refund(order, late, late_policy or LatePolicy())
    if flow == "billing_issue" and asks_invoice(text):
        return invoice(order)
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
    return texts.render("utter_days_one" if n == 1 else "utter_days_many", n=n)


def _late_status(order: Order, late: int, policy: LatePolicy) -> FlowResult:
    due, carrier = order.estimated_delivery, _carrier(order)
    assert due is not None
    head = texts.render(
        "utter_late_status_head",
        order=order.number,
        items=_items(order),
        shipped=format_date(order.shipped_at),
        due=format_date(due),
        late=_days(late),
        tracking=_tracking(order),
    )
    step, next_step_on = policy.step(due, late)
    until = format_date(next_step_on)
    if step is LateStep.wait:
        return FlowResult(
            texts.render(
                "utter_late_status_wait",
                head=head,
                grace=_days(policy.grace_days),
                until=until,
                carrier=carrier,
            ),
            buttons=[PERSON_BUTTON],
        )
    if step is LateStep.trace:
        return FlowResult(
            texts.render("utter_late_status_trace", head=head, carrier=carrier, until=until),
            buttons=[{"title": "Trace my parcel", "payload": "/delivery_problem"}, PERSON_BUTTON],
        )
    return FlowResult(
        texts.render("utter_late_status_replace", head=head),
        buttons=[{"title": "Arrange a replacement or refund", "payload": PERSON_BUTTON["payload"]}],
    )


def _late_delivery(order: Order, late: int, policy: LatePolicy) -> FlowResult:
    due, carrier = order.estimated_delivery, _carrier(order)
    assert due is not None
    step, next_step_on = policy.step(due, late)
    until = format_date(next_step_on)
    values = {"order": order.number, "due": format_date(due), "tracking": _tracking(order)}
    if step is LateStep.wait:
        return FlowResult(
            texts.render(
                "utter_late_delivery_wait",
                **values,
                grace=_days(policy.grace_days),
                until=until,
                carrier=carrier,
            ),
            buttons=[PERSON_BUTTON],
        )
    if step is LateStep.trace:
        return FlowResult(
            texts.render("utter_late_delivery_trace", **values, carrier=carrier, until=until),
            NextStep.survey,
        )
    return FlowResult(
        texts.render("utter_late_delivery_replace", **values, late=_days(late)),
        buttons=[{"title": "Arrange a replacement or refund", "payload": PERSON_BUTTON["payload"]}],
    )


REFUND_BUTTON = {"title": "Arrange my refund", "payload": PERSON_BUTTON["payload"]}


def _late_refund(order: Order, late: int, policy: LatePolicy) -> FlowResult:
    """A refund asked for a parcel `late` days past its date: what the late-parcel table
    allows now, in words about the refund (so that "it's late, i want my money back" does
    not get the delivery answer twice), a person always on offer."""
    due = order.estimated_delivery
    assert due is not None
    step, next_step_on = policy.step(due, late)
    values = {"order": order.number, "due": format_date(due), "amount": _money(order)}
    if step is LateStep.replace_or_refund:
        # An offer of a person that a typed "yes please" accepts (resolve_pending).
        return FlowResult(
            texts.render("utter_late_refund_replace", **values, late=_days(late)),
            NextStep.confirm,
            pending_action="offer_human",
            buttons=[REFUND_BUTTON],
        )
    carrier, tracking = _carrier(order), _tracking(order)
    if step is LateStep.trace:
        return FlowResult(
            texts.render(
                "utter_late_refund_trace",
                **values,
                carrier=carrier,
                until=format_date(next_step_on),
                tracking=tracking,
            ),
            buttons=[PERSON_BUTTON],
        )
    return FlowResult(
        texts.render(
            "utter_late_refund_wait",
            **values,
            grace=_days(policy.grace_days),
            until=format_date(next_step_on),
            refund_from=format_date(due + timedelta(days=policy.replacement_after_days)),
            carrier=carrier,
            tracking=tracking,
        ),
        buttons=[PERSON_BUTTON],
    )


def order_status(
    order: Order, _window: int, now: datetime | None = None, policy: LatePolicy | None = None
) -> FlowResult:
    number = order.number
    late = days_late(order, now)
    if late:
        return _late_status(order, late, policy or LatePolicy())
    if order.status is OrderStatus.placed:
        text = texts.render(
            "utter_order_status_placed",
            order=number,
            items=_items(order),
            placed=format_date(order.placed_at),
        )
    elif order.status is OrderStatus.shipped:
        text = texts.render(
            "utter_order_status_shipped",
            order=number,
            items=_items(order),
            shipped=format_date(order.shipped_at),
            eta=format_date(order.estimated_delivery),
            tracking=_tracking(order),
        )
    elif order.status is OrderStatus.delivered:
        text = texts.render(
            "utter_order_status_delivered",
            order=number,
            items=_items(order),
            delivered=format_date(order.delivered_at),
            tracking=_tracking(order),
        )
    elif order.status is OrderStatus.returned:
        text = texts.render("utter_order_status_returned", order=number)
    elif order.status is OrderStatus.refunded:
        text = texts.render(
            "utter_order_status_refunded",
            order=number,
            refunded=format_date(order.refunded_at),
            amount=_money(order),
        )
    else:
        text = texts.render(
            "utter_order_status_cancelled", order=number, cancelled=format_date(order.cancelled_at)
        )
    return FlowResult(text, NextStep.survey)


_CHECKED_AROUND = re.compile(r"\b(neighbou?rs?|safe place|looked everywhere|checked)\b", re.I)


def delivery_problem(
    order: Order,
    _window: int,
    now: datetime | None = None,
    policy: LatePolicy | None = None,
    said: str = "",
) -> FlowResult:
    late = days_late(order, now)
    if late:
        return _late_delivery(order, late, policy or LatePolicy())
    if order.status is OrderStatus.placed:
        text = texts.render("utter_delivery_placed", order=order.number)
    elif order.status is OrderStatus.shipped:
        text = texts.render(
            "utter_delivery_shipped",
            order=order.number,
            eta=format_date(order.estimated_delivery),
            tracking=_tracking(order),
        )
    elif order.status is OrderStatus.delivered:
        # "checked with neighbours too": not told to check with the neighbours (tester)
        checked = bool(_CHECKED_AROUND.search(said))
        text = texts.render(
            "utter_delivery_delivered_checked" if checked else "utter_delivery_delivered",
            order=order.number,
            delivered=format_date(order.delivered_at),
            carrier=_carrier(order),
        )
    else:
        text = texts.render("utter_delivery_none", order=order.number, status=order.status.value)
    return FlowResult(text, NextStep.survey)


def size_change_not_delivered(order: Order) -> FlowResult:
    """Another size asked for an order not delivered yet ("i want size L instead of M, can
    you change it"): not an address change; a person can change it (the bot cannot change
    an order's items), or the customer cancels and orders again (tester tq10)."""
    name = (
        "utter_size_change_not_shipped"
        if order.status is OrderStatus.placed
        else "utter_size_change_on_its_way"
    )
    return FlowResult(
        texts.render(name, order=order.number, status=order.status.value),
        NextStep.confirm,
        pending_action="offer_human",
        buttons=YES_NO,
    )


def lost_parcel(order: Order) -> FlowResult:
    """A new parcel or the money asked for one delivered per tracking that never came ("can
    u just send a new one" after the trace): not a return of what the customer never got;
    the trace goes first, then a new one or a refund, or a person arranges it now (tester 2,
    tr02)."""
    return FlowResult(
        texts.render(
            "utter_lost_parcel_person",
            order=order.number,
            delivered=format_date(order.delivered_at),
            carrier=_carrier(order),
        ),
        NextStep.confirm,
        pending_action="offer_human",
        buttons=YES_NO,
    )


def colour_exchange(order: Order, colour: str, window: int) -> FlowResult:
    """Another colour of a delivered item: free within the return window, arranged by a
    person (the colours in stock are not in the order data); past the window, a person
    all the same, who can say what is possible."""
    return FlowResult(
        texts.render(
            "utter_exchange_colour_person", order=order.number, colour=colour, window=window
        ),
        NextStep.confirm,
        pending_action="offer_human",
        buttons=YES_NO,
    )


def arrived_before_its_scan(order: Order) -> FlowResult:
    """A problem with a parcel the customer has while its tracking still shows it on its
    way: nothing can be started on it here, so a person is offered at once."""
    return FlowResult(
        texts.render("utter_arrived_before_its_scan", order=order.number),
        NextStep.confirm,
        pending_action="offer_human",
        buttons=YES_NO,
    )


def damaged_item(order: Order, window: int) -> FlowResult:
    if order.status is not OrderStatus.delivered:
        # Not delivered in our records, yet the customer may have it (the carrier's scan is
        # late): no dead end, a person sorts it out (a tester's "arrived smashed" got none).
        return FlowResult(
            texts.render(
                "utter_damaged_not_delivered", order=order.number, status=order.status.value
            ),
            buttons=[PERSON_BUTTON],
        )
    eligible = return_eligibility(order, window)
    if eligible and _window_passed(order, window):
        # "but its faulty, it leaks from the bottom" after the return was refused: the
        # warranty is a person's to arrange, offered as a yes/no (tester tr13 got the
        # refusal again, then "I've checked again and it's still the same")
        return FlowResult(
            texts.render(
                "utter_damaged_warranty",
                order=order.number,
                delivered=format_date(order.delivered_at),
                window=window,
            ),
            NextStep.confirm,
            pending_action="offer_human",
            buttons=YES_NO,
        )
    if eligible:
        return _refused(order, window, eligible)
    return _confirm(
        texts.render(
            "utter_damaged_confirm_return",
            order=order.number,
            items=_items(order),
            amount=_money(order),
        ),
        "return_item",
    )


def return_eligibility(order: Order, window: int, item_returns: bool = False) -> str | None:
    """Why a return cannot be started, or None if it can. With `item_returns` (the order
    has item-level returns, bot/domain/returns.py) an open return does not stop another
    one for the items left."""
    if order.status is OrderStatus.cancelled:
        return texts.render("utter_return_cancelled", order=order.number)
    if order.status in (OrderStatus.returned, OrderStatus.refunded):
        return texts.render("utter_return_already_returned", order=order.number)
    if order.status in (OrderStatus.placed, OrderStatus.shipped):
        return texts.render("utter_return_not_delivered", order=order.number, window=window)
    if order.return_requested_at is not None and not item_returns:
        return texts.render(
            "utter_return_already_open",
            order=order.number,
            opened=format_date(order.return_requested_at),
        )
    if _window_passed(order, window):
        return texts.render(
            "utter_return_window_passed",
            order=order.number,
            delivered=format_date(order.delivered_at),
            window=window,
        )
    return None


def _window_passed(order: Order, window: int) -> bool:
    return bool(order.delivered_at and order.delivered_at < utcnow() - timedelta(days=window))


def _refused(order: Order, window: int, refusal: str) -> FlowResult:
    """A return that cannot be started. Past the return window a faulty or damaged item is
    a person's to sort out (warranty, goodwill): offered as a button, with no CSAT on the
    refusal; a tester's damaged lamp got the same refusal three times and no way on."""
    if order.status is OrderStatus.delivered and _window_passed(order, window):
        return FlowResult(refusal, buttons=[PERSON_BUTTON])
    return FlowResult(refusal, NextStep.survey)


def return_item(order: Order, window: int) -> FlowResult:
    refusal = return_eligibility(order, window)
    if refusal:
        return _refused(order, window, refusal)
    return _confirm(
        texts.render(
            "utter_return_confirm", order=order.number, items=_items(order), amount=_money(order)
        ),
        "return_item",
    )


# A refund shows on the statement within 3–5 working days: later than this many days, it
# is a person's to chase with the payment provider (tester 3: "its been 2 months").
REFUND_OVERDUE_DAYS = 10


# "how long for the money to show up", "when will i see it": the bank's time (tester 4, tw4_02)
_HOW_LONG = re.compile(
    r"\bhow (?:long|many days)\b|\bwhen (?:will|does|do|should|can)\b.{0,40}"
    r"\b(?:show|arrive|appear|see|get|come|be back)\b",
    re.IGNORECASE,
)


def asks_how_long(text: str) -> bool:
    return bool(_HOW_LONG.search(text or ""))


def cancelled_unexpectedly(order: Order) -> FlowResult:
    """ "why was my jumper order cancelled?? i never cancelled it": what happened is a
    person's to find out (payment, stock, fraud checks), offered at once."""
    return FlowResult(
        texts.render(
            "utter_cancelled_why_person",
            order=order.number,
            cancelled=format_date(order.cancelled_at),
        ),
        NextStep.confirm,
        pending_action="offer_human",
        buttons=YES_NO,
    )


def refund_status(
    order: Order, _window: int, now: datetime | None = None, said: str = ""
) -> FlowResult:
    refunded = order.refunded_at
    if (
        order.status is OrderStatus.refunded
        and refunded is not None
        and (now or utcnow()) - refunded > timedelta(days=REFUND_OVERDUE_DAYS)
    ):
        return FlowResult(
            texts.render(
                "utter_refund_how_long_overdue"
                if _HOW_LONG.search(said)
                else "utter_refund_issued_overdue",
                amount=_money(order),
                order=order.number,
                refunded=format_date(refunded),
            ),
            NextStep.confirm,
            pending_action="offer_human",
            buttons=YES_NO,
        )
    if order.status is OrderStatus.refunded:
        text = texts.render(
            "utter_refund_issued",
            amount=_money(order),
            order=order.number,
            refunded=format_date(order.refunded_at),
        )
    elif order.status is OrderStatus.returned:
        text = texts.render(
            "utter_refund_return_received", order=order.number, amount=_money(order)
        )
    elif order.return_requested_at is not None:
        text = texts.render(
            "utter_refund_return_open",
            order=order.number,
            opened=format_date(order.return_requested_at),
        )
    elif order.status is OrderStatus.cancelled:
        text = texts.render("utter_refund_cancelled", order=order.number)
    else:
        text = texts.render("utter_refund_none", order=order.number, status=order.status.value)
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
            texts.render(
                "utter_refund_confirm_cancel",
                order=order.number,
                items=_items(order),
                amount=_money(order),
            ),
            "cancel_order",
        )
    if order.status is OrderStatus.shipped:
        return FlowResult(
            texts.render(
                "utter_refund_after_delivery",
                order=order.number,
                window=window,
                amount=_money(order),
            ),
            NextStep.survey,
        )
    refusal = return_eligibility(order, window)
    if refusal:
        return _refused(order, window, refusal)
    return _confirm(
        texts.render(
            "utter_refund_confirm_return",
            order=order.number,
            items=_items(order),
            amount=_money(order),
        ),
        "return_item",
    )


def cancel_order(order: Order, _window: int) -> FlowResult:
    if order.status is OrderStatus.placed:
        return _confirm(
            texts.render(
                "utter_cancel_confirm",
                order=order.number,
                items=_items(order),
                amount=_money(order),
            ),
            "cancel_order",
        )
    if order.status is OrderStatus.cancelled:
        return FlowResult(
            texts.render("utter_cancel_already_cancelled", order=order.number), NextStep.survey
        )
    sentences = [
        texts.render("utter_cancel_too_late", order=order.number, status=order.status.value)
    ]
    if order.status is OrderStatus.shipped:
        sentences.append(texts.render("utter_cancel_return_after_delivery"))
    elif order.status is OrderStatus.delivered:
        sentences.append(texts.render("utter_cancel_return_still"))
    return FlowResult(" ".join(sentences), NextStep.survey)


def change_address(order: Order, _window: int) -> FlowResult:
    if order.status is OrderStatus.placed:
        return FlowResult(
            texts.render("utter_address_ask", order=order.number, address=order.shipping_address),
            NextStep.address,
        )
    return FlowResult(
        texts.render("utter_address_too_late", order=order.number, status=order.status.value),
        NextStep.survey,
    )


_INVOICE = re.compile(r"\b(invoice|receipt|vat|tax id|company (name|details))", re.IGNORECASE)


# "and if it doesnt come tomorow?", "what if it never arrives" after a parcel's status: what
# happens next for that parcel (the late-parcel table), not a help-centre search (tq23).
_IF_NOT_ARRIVED = re.compile(
    r"\b(?:what )?if (?:it|they|the (?:parcel|package|order|box))\s+(?:still\s+)?(?:doesn'?t|does not|"
    r"dont|don'?t|do not|never|hasn'?t|has not|won'?t|isn'?t|is not)\s+(?:come|arrive|turn up|"
    r"show up|get here|here|delivered|show)",
    re.IGNORECASE,
)


def asks_if_not_arrived(text: str) -> bool:
    return bool(_IF_NOT_ARRIVED.search(text or ""))


def disputed_charge(order: Order) -> FlowResult:
    """Money back asked right after a charge was questioned ("charged twice … i want the
    money back now"): the charge is a person's to check and refund, not a cancellation or
    a return of the order (tester tr07)."""
    return FlowResult(
        texts.render("utter_billing_disputed_refund", order=order.number, amount=_money(order)),
        NextStep.confirm,
        pending_action="offer_human",
        buttons=YES_NO,
    )


def money_back_after_charge(order: Order) -> FlowResult:
    """ "ok and how long for the money back?" right after a double charge was explained:
    when the pre-authorisation goes, not the order's refund state (tester 3, tw3_15)."""
    return FlowResult(
        texts.render("utter_billing_money_back_when", order=order.number),
        NextStep.confirm,
        pending_action="offer_human",
        buttons=YES_NO,
    )


def asks_invoice(text: str) -> bool:
    """ "can u send me the invoice", "an invoice with my company VAT id": not a charge."""
    return bool(_INVOICE.search(text or ""))


def invoice(order: Order) -> FlowResult:
    """Where the invoice is, and a person for a copy or one with company details (the bot
    cannot issue invoices; the double-charge text answered these: tester)."""
    return FlowResult(
        texts.render("utter_billing_invoice", order=order.number, amount=_money(order)),
        NextStep.confirm,
        pending_action="offer_human",
        buttons=YES_NO,
    )


def billing_issue(order: Order, _window: int) -> FlowResult:
    if order.status is OrderStatus.cancelled:
        return FlowResult(
            texts.render("utter_billing_cancelled", order=order.number), NextStep.survey
        )
    return FlowResult(
        texts.render(
            "utter_billing_charged",
            order=order.number,
            amount=_money(order),
            placed=format_date(order.placed_at),
        ),
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


# "change the delivery address for the jumper to Rosenweg 12, 8001 Zürich": the address
# after "to" in the request itself
_ADDRESS_GIVEN = re.compile(
    r"\b(?:address|deliver(?:ed|y)?|send|sent|ship(?:ped)?)\b[^.?!]*?"
    r"\b(?:to|is now|now is|new address is|new address:)\s+(?P<address>[^?!]*\d[^?!]*)$",
    re.I,
)
_NOT_AN_ADDRESS = re.compile(r"\b(?:change|address|order|cancel|please|pls)\b", re.I)


def address_given(text: str) -> str | None:
    """A new address typed with the request, after "… address … to" (tester 5, tw5_06: it
    was asked for again); never words of the request itself ("need to change the delivery
    address on A94736 i moved" is no address: sf20 got it as one)."""
    match = _ADDRESS_GIVEN.search(text or "")
    if match is None:
        return None
    address = match.group("address").strip(" .!")
    # (a German postcode is five digits like an order number without its A)
    if re.search(r"\b[Aa]\d{5}\b|#\s?\d", address) or _NOT_AN_ADDRESS.search(address):
        return None
    # with a postcode only: anything vaguer ("my neighbour at number 5") is asked for
    return validate_address(address) if re.search(r"\d{3,}", address) else None


def confirm_address(order: Order, address: str) -> FlowResult:
    return _confirm(
        texts.render("utter_address_confirm", order=order.number, address=address),
        "change_address",
    )


# --- subscription flows ----------------------------------------------------------------


def next_period_end(subscription: Subscription, now: datetime | None = None) -> datetime:
    """When the current billing period ends, never in the past: a period end the shop has
    not moved on yet (no renewal event) is rolled forward by whole periods, so the bot never
    says "nothing will be charged after 27 November" on 7 December."""
    now = now or utcnow()
    end = subscription.current_period_end
    if end.tzinfo is None:
        end = end.replace(tzinfo=timezone.utc)
    period = _period(subscription)
    if period <= timedelta(0):
        return end
    while end <= now:
        end += period
    return end


def asks_skip_next(text: str) -> bool:
    """ "skip the next box", "can i skip next months coffee": one box, no date named."""
    return bool(_SKIP_NEXT.search((text or "").lower()))


def _period(subscription: Subscription) -> timedelta:
    return subscription.current_period_end - subscription.current_period_start


# "will i still be charged this month?", "when is the next payment": a question about the
# charges to come, not a complaint about one made (that goes to a person).
_CHARGES_TO_COME = re.compile(
    r"\b(?:will|would|do|does|am|is|are|when|how much)\b.{0,40}\b(?:charged?|billed?|"
    r"pay(?:ing)?|payments?|take (?:the )?money)\b|\bnext (?:charge|payment|bill(?:ing)?)\b",
    re.IGNORECASE,
)


def asks_charges_to_come(text: str) -> bool:
    return bool(_CHARGES_TO_COME.search(text or ""))


def subscription_charges(subscription: Subscription) -> str:
    """What a subscriber will be charged and when, by the subscription's status."""
    values = {
        "plan": subscription.plan,
        "price": f"{subscription.price:.2f} {subscription.currency}",
    }
    if subscription.status is SubscriptionStatus.paused and subscription.resume_on:
        return texts.render(
            "utter_subscription_charges_paused_until",
            **values,
            restart=format_date(subscription.resume_on),
        )
    if subscription.status is SubscriptionStatus.paused:
        return texts.render("utter_subscription_charges_paused", **values)
    if subscription.status is SubscriptionStatus.cancelled:
        return texts.render(
            "utter_subscription_charges_cancelled",
            **values,
            cancelled=format_date(subscription.cancelled_at),
        )
    return texts.render(
        "utter_subscription_charges_active",
        **values,
        next=format_date(next_period_end(subscription)),
    )


# "hmm wait what does it cost again" while a subscription is being talked about (tester 3,
# tw3_13: it got "I'm not sure I can answer that from our product pages").
_ASKS_PRICE = re.compile(
    r"\b(?:how much (?:is|does|do|am)|what(?:'?s| is| does| do)? (?:it |that |this |the )?"
    r"(?:cost|price|charge)|cost again|price again|how much again)\b",
    re.IGNORECASE,
)


def asks_price(text: str) -> bool:
    return bool(_ASKS_PRICE.search(text or ""))


def subscription_price(subscription: Subscription, now: datetime | None = None) -> str:
    return texts.render(
        "utter_subscription_price",
        plan=subscription.plan,
        price=_price(subscription),
        next=format_date(next_period_end(subscription, now)),
    )


def subscription_delivery(subscription: Subscription, now: datetime | None = None) -> FlowResult:
    """When the next box comes ("when is my next coffee box coming", tester tw3_05)."""
    values = {"plan": subscription.plan}
    if subscription.status is SubscriptionStatus.paused and subscription.resume_on:
        response = "utter_subscription_next_box_paused_until"
        values["restart"] = format_date(subscription.resume_on)
    elif subscription.status is SubscriptionStatus.paused:
        response = "utter_subscription_next_box_paused"
    elif subscription.status is SubscriptionStatus.cancelled:
        response = "utter_subscription_next_box_cancelled"
        values["cancelled"] = format_date(subscription.cancelled_at)
    else:
        response = "utter_subscription_next_box"
        values["next"] = format_date(next_period_end(subscription, now))
    return FlowResult(texts.render(response, **values))


def skip_next_restart(subscription: Subscription, now: datetime | None = None) -> datetime:
    """Skipping the next box pauses until the box after it: the next period end plus one
    period (not a calendar month, which skipped two boxes of a plan renewing on the 25th)."""
    return next_period_end(subscription, now) + _period(subscription)


# "wait no undo that, i want to keep it" right after cancelling (tester tr24): within this
# many hours of the cancellation the customer can take it back in the chat, as if it had
# never happened; later a person reactivates it.
UNDO_CANCEL_HOURS = 24


def can_reactivate(subscription: Subscription, now: datetime | None = None) -> bool:
    now = now or utcnow()
    cancelled = subscription.cancelled_at
    return (
        subscription.status is SubscriptionStatus.cancelled
        and cancelled is not None
        and now - cancelled <= timedelta(hours=UNDO_CANCEL_HOURS)
    )


def reactivate_question(subscription: Subscription) -> FlowResult:
    return _confirm(
        texts.render(
            "utter_subscription_confirm_reactivate",
            plan=subscription.plan,
            price=_price(subscription),
        ),
        "resume_subscription",
    )


def subscription_flow(
    flow: str,
    subscription: Subscription | None,
    pause_until: datetime | None = None,
    now: datetime | None = None,
    skip_next: bool = False,
) -> FlowResult:
    """Pause (until a date, or until resumed; `skip_next`: the next box only, `pause_until`
    then being skip_next_restart), resume or cancel, each confirmed first."""
    if subscription is None:
        return FlowResult(texts.render("utter_subscription_none"))
    plan = subscription.plan
    if flow == "pause_subscription":
        if subscription.status is SubscriptionStatus.paused:
            if subscription.resume_on:
                text = texts.render(
                    "utter_subscription_already_paused_until",
                    plan=plan,
                    until=format_date(subscription.resume_on),
                )
            else:
                text = texts.render("utter_subscription_already_paused", plan=plan)
            return FlowResult(text, NextStep.survey)
        if skip_next and pause_until is not None:
            return _confirm(
                texts.render(
                    "utter_subscription_confirm_skip_next",
                    plan=plan,
                    skipped=format_date(next_period_end(subscription, now)),
                    restart=format_date(pause_until),
                ),
                "pause_subscription",
            )
        if pause_until is not None:
            return _confirm(
                texts.render(
                    "utter_subscription_confirm_pause_until",
                    plan=plan,
                    until=format_date(pause_until),
                ),
                "pause_subscription",
            )
        return _confirm(
            texts.render(
                "utter_subscription_confirm_pause",
                plan=plan,
                period_end=format_date(next_period_end(subscription, now)),
            ),
            "pause_subscription",
        )
    if flow == "resume_subscription":
        if subscription.status is SubscriptionStatus.active:
            return FlowResult(
                texts.render(
                    "utter_subscription_already_active",
                    plan=plan,
                    period_end=format_date(next_period_end(subscription, now)),
                ),
                NextStep.survey,
            )
        return _confirm(
            texts.render(
                "utter_subscription_confirm_resume", plan=plan, price=_price(subscription)
            ),
            "resume_subscription",
        )
    if subscription.status is SubscriptionStatus.active:
        # One save offer (issue #19 item 4): pausing is as easy as cancelling, and "Cancel
        # anyway" as prominent as "Pause instead"; a typed yes cancels, as asked.
        return FlowResult(
            texts.render(
                "utter_subscription_confirm_cancel_or_pause", plan=plan, price=_price(subscription)
            ),
            NextStep.confirm,
            pending_action="cancel_subscription",
            buttons=[
                {
                    "title": texts.render("utter_subscription_cancel_anyway_button"),
                    "payload": "yes",
                },
                {
                    "title": texts.render("utter_subscription_pause_instead_button"),
                    "payload": PAUSE_INSTEAD_PAYLOAD,
                },
                {"title": texts.render("utter_subscription_keep_button"), "payload": "no"},
            ],
        )
    return _confirm(
        texts.render("utter_subscription_confirm_cancel", plan=plan, price=_price(subscription)),
        "cancel_subscription",
    )


def _price(subscription: Subscription) -> str:
    return f"{subscription.price:.2f} {subscription.currency}"


MAX_PAUSE_DAYS = 366
_SKIP = re.compile(r"\bskip(ping)?\b")
_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_PAUSE_LENGTH = re.compile(
    r"\bfor\s+(a|an|one|two|three|four|five|six|\d{1,2})\s+(day|week|month)s?\b"
)
_SKIP_NEXT = re.compile(r"\bskip(ping)?\s+(the\s+|my\s+)?next\b")


def _months_later(day: datetime, months: int) -> datetime:
    """The same day `months` calendar months later (the 28th at most, so it exists)."""
    index = day.month - 1 + months
    return day.replace(year=day.year + index // 12, month=index % 12 + 1, day=min(day.day, 28))


_MID_MONTH = re.compile(r"\b(mid|middle of)[- ]", re.IGNORECASE)


_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]


def _months_spelled_right(text: str) -> str:
    """ "till febuary", "pause until janurary": a month name one or two letters off, spelled
    right (tester 9, tw9_02: the month was dropped and the pause had no end)."""

    def fix(match: re.Match[str]) -> str:
        word = match.group(0)
        close = difflib.get_close_matches(word.lower(), _MONTHS, n=1, cutoff=0.8)
        return close[0] if close else word

    return re.sub(r"\b[A-Za-z]{6,}\b", fix, text)


def parse_pause_until(text: str, now: datetime) -> datetime | None:
    """The day deliveries restart after a pause the customer dated, or None.

    "pause until March" → 1 March; "skip January" → 1 February (the month after the one
    skipped); "pause till the 15th of January" or "till mid january" → 15 January. Dates are read with
    dateparser (future dates preferred, the first of a month when only a month is named);
    past dates and dates more than a year ahead are ignored. A length ("for a month", "for
    2 weeks") counts from today: "for a month" on 7 December restarts on 7 January.
    """
    length = _PAUSE_LENGTH.search((text or "").lower())
    if length:
        count = _NUMBER_WORDS.get(length.group(1)) or int(length.group(1))
        unit = length.group(2)
        day = datetime(now.year, now.month, now.day, tzinfo=now.tzinfo)
        if unit == "month":
            day = _months_later(day, count)
        else:
            day += timedelta(days=count * (7 if unit == "week" else 1))
        return day if timedelta(0) < day - now <= timedelta(days=MAX_PAUSE_DAYS) else None
    from dateparser.search import search_dates  # slow to import; only pauses need it

    found = search_dates(
        re.sub(r"\bmid-", "mid ", _months_spelled_right(text or ""), flags=re.IGNORECASE),
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
    if _MID_MONTH.search(text) and not re.search(r"\d", phrase):
        day = day.replace(day=15)  # "till mid january": the 15th, not the 1st (tester)
    elif _SKIP.search(text.lower()) and not re.search(r"\d", phrase):
        # A month skipped: deliveries restart on the first of the next month ("skip
        # December" said in December is this December, not next year's).
        if (day.year, day.month) == (now.year + 1, now.month):
            day = day.replace(year=now.year)
        day = _months_later(day.replace(day=1), 1)
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
    return_draft: returns.ReturnDraft | None = None,
) -> FlowResult:
    """Carry out a change the customer confirmed, and audit it (a return of the items in
    `return_draft`, or of the whole order without one).

    Each change re-checks that it is still allowed: the order may have moved on
    between the question and the "yes".
    """
    now = utcnow()
    details: dict[str, str] = {}
    if action in {"cancel_order", "return_item", "change_address"}:
        if order is None:
            return FlowResult(texts.render("utter_confirmed_lost_order"))
        lifecycle = await lifecycles.lifecycle_for_order(session, order)
        target_type, target_id = "order", order.number
        if action == "cancel_order":
            if order.status is not OrderStatus.placed:
                return FlowResult(
                    texts.render("utter_confirmed_cancel_too_late", order=order.number),
                    NextStep.survey,
                )
            order.status, order.cancelled_at = OrderStatus.cancelled, now
            lifecycles.sync_with_order(lifecycle, order)
            reply = texts.render("utter_confirmed_cancelled", order=order.number)
        elif action == "return_item" and return_draft is not None:
            returned = await returns.returned_units(session, order)
            refusal = return_eligibility(order, return_window_days, item_returns=bool(returned))
            created = refusal or await returns.create_return(
                session, order, return_draft, returns.returnable_units(order, returned)
            )
            if isinstance(created, str):
                return FlowResult(created, NextStep.survey)
            sent_back = any(line.reason != returns.Reason.missing.value for line in created.lines)
            if order.return_requested_at is None and sent_back:
                # (an item missing from the parcel is no return: nothing comes back)
                order.return_requested_at = now
            lifecycles.advance(lifecycle, Stage.support)
            details = {"reference": created.reference}
            reply = returns.started_text(created, order, customer.email)
        elif action == "return_item":
            refusal = return_eligibility(order, return_window_days)
            if refusal:
                return FlowResult(refusal, NextStep.survey)
            order.return_requested_at = now
            lifecycles.advance(lifecycle, Stage.support)
            reply = texts.render(
                "utter_confirmed_return_started",
                order=order.number,
                email=customer.email,
                amount=_money(order),
            )
        else:
            if order.status is not OrderStatus.placed or not new_address:
                return FlowResult(
                    texts.render("utter_confirmed_address_too_late", order=order.number),
                    NextStep.survey,
                )
            details = {"from": order.shipping_address, "to": new_address}
            order.shipping_address = new_address
            reply = texts.render(
                "utter_confirmed_address_changed", order=order.number, address=new_address
            )
    elif action in {"pause_subscription", "resume_subscription", "cancel_subscription"}:
        if subscription is None:
            return FlowResult(texts.render("utter_subscription_none"))
        target_type, target_id = "subscription", str(subscription.id)
        if action == "pause_subscription":
            subscription.status, subscription.paused_at = SubscriptionStatus.paused, now
            subscription.resume_on = pause_until
            if pause_until is not None:
                details = {"resume_on": pause_until.date().isoformat()}
                reply = texts.render(
                    "utter_confirmed_paused_until",
                    plan=subscription.plan,
                    until=format_date(pause_until),
                )
            else:
                reply = texts.render("utter_confirmed_paused", plan=subscription.plan)
        elif action == "resume_subscription" and can_reactivate(subscription, now):
            subscription.status, subscription.cancelled_at = SubscriptionStatus.active, None
            reply = texts.render(
                "utter_confirmed_reactivated", plan=subscription.plan, price=_price(subscription)
            )
        elif action == "resume_subscription":
            if subscription.status is not SubscriptionStatus.paused:
                return FlowResult(
                    texts.render("utter_confirmed_resume_already_active", plan=subscription.plan),
                    NextStep.survey,
                )
            subscription.status, subscription.paused_at = SubscriptionStatus.active, None
            subscription.resume_on = None
            reply = texts.render(
                "utter_confirmed_resumed", plan=subscription.plan, price=_price(subscription)
            )
        else:
            subscription.status, subscription.cancelled_at = SubscriptionStatus.cancelled, now
            reply = texts.render("utter_confirmed_subscription_cancelled", plan=subscription.plan)
            session.add(
                audit.by_customer_in_chat(customer.id, action, target_type, target_id, details)
            )
            await session.flush()
            return FlowResult(reply, NextStep.churn_survey)
    else:
        return FlowResult(texts.render("utter_okay"))
    session.add(audit.by_customer_in_chat(customer.id, action, target_type, target_id, details))
    await session.flush()
    return FlowResult(reply, NextStep.survey)
