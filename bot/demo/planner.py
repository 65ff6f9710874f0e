"""The demo shop's history planned before anything is written: customers, orders with their
shipping timelines, subscriptions and their periods, support contacts; every draw from the
one seeded generator, in a fixed order.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.demo.data import (
    CARRIER_WEIGHTS,
    CARRIERS,
    COUNTRIES,
    COUNTRY_WEIGHTS,
    CURRENCY,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    HISTORY_DAYS,
    LAST_NAMES,
    LATE_PROBABILITY,
    PRICE_INCREASE,
    PRODUCT_BY_SKU,
    PRODUCTS,
    SOURCE_WEIGHTS,
    STREETS,
    SUBSCRIPTION_PLANS,
)
from bot.domain.enums import AcquisitionSource, OrderStatus, SubscriptionStatus
from bot.storage.models import Order

# --- plans -----------------------------------------------------------------------------


@dataclass
class CustomerPlan:
    external_id: str
    name: str
    email: str
    source: AcquisitionSource | None
    address: str
    country: str
    readme: bool = False
    first_activity: datetime | None = None
    created_at: datetime | None = None
    id: int = 0


@dataclass
class SubscriptionPlan:
    customer: CustomerPlan
    plan: str
    sku: str
    price: Decimal
    status: SubscriptionStatus
    period_starts: list[datetime]
    paused_at: datetime | None = None
    cancelled_at: datetime | None = None
    id: int = 0


@dataclass
class OrderPlan:
    customer: CustomerPlan
    placed_at: datetime
    status: OrderStatus
    items: list[tuple[str, str, int, Decimal]]
    opened_at: datetime
    number: str = ""
    carrier: str | None = None
    tracking: str | None = None
    shipped_at: datetime | None = None
    estimated_delivery: datetime | None = None
    delivered_at: datetime | None = None
    return_requested_at: datetime | None = None
    refunded_at: datetime | None = None
    cancelled_at: datetime | None = None
    late: bool = False
    support: str | None = None
    support_at: datetime | None = None
    scripted: bool = False
    delivery_survey: bool | None = None
    subscription: SubscriptionPlan | None = None
    period_end: datetime | None = None
    last_period: bool = False
    row: Order | None = None
    # Fixed texts and scores of the README orders (random when None).
    cancel_comment: str | None = None
    complaint: str | None = None
    delivery_score: int | None = None
    delivery_comment: str | None = None
    support_score: int | None = None
    support_comment: str | None = None

    @property
    def product(self) -> str:
        return self.items[0][1]

    @property
    def category(self) -> str:
        product = PRODUCT_BY_SKU.get(self.items[0][0])
        return product.category if product else "coffee"

    def order_row(self, status: OrderStatus) -> dict[str, Any]:
        """The order's row for a bulk insert (customer and subscription written already)."""
        return {
            "number": self.number,
            "customer_id": self.customer.id,
            "subscription_id": self.subscription.id if self.subscription else None,
            "status": status,
            "total": sum((price * qty for _s, _n, qty, price in self.items), Decimal("0.00")),
            "currency": CURRENCY,
            "shipping_address": self.customer.address,
            "carrier": self.carrier if self.shipped_at else None,
            "tracking_number": self.tracking if self.shipped_at else None,
            "placed_at": self.placed_at,
            "shipped_at": self.shipped_at,
            "estimated_delivery": self.estimated_delivery,
            "delivered_at": self.delivered_at,
            "return_requested_at": self.return_requested_at,
            "refunded_at": self.refunded_at,
            "cancelled_at": self.cancelled_at,
        }


def _ascii(text: str) -> str:
    for src, dst in (("ü", "ue"), ("ö", "oe"), ("ä", "ae"), ("ß", "ss"), ("ı", "i")):
        text = text.replace(src, dst)
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def add_months(value: datetime, months: int) -> datetime:
    index = value.month - 1 + months
    return value.replace(year=value.year + index // 12, month=index % 12 + 1)


def _day_1_to_28(value: datetime) -> datetime:
    return value - timedelta(days=max(0, value.day - 28))


class Planner:
    """Decides everything (who, what, when) before anything is written."""

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.emails: set[str] = set()

    def hours(self, low: float, high: float) -> timedelta:
        return timedelta(hours=self.rng.uniform(low, high))

    def days(self, low: float, high: float) -> timedelta:
        return timedelta(days=self.rng.uniform(low, high))

    # customers ------------------------------------------------------------------------

    def address(self, name: str, country: str) -> str:
        city, codes = self.rng.choice(COUNTRIES[country])
        street = self.rng.choice(STREETS[country])
        number = self.rng.randint(1, 180)
        code = self.rng.choice(codes)
        if country == "Netherlands":
            letters = "".join(self.rng.choice("ABCDEGHJKLMNPRSTVWXZ") for _ in range(2))
            code = f"{code} {letters}"
        return f"{name}, {street} {number}, {code} {city}, {country}"

    def email(self, first: str, last: str) -> str:
        f, last_ascii = _ascii(first), _ascii(last)
        while True:
            style = self.rng.random()
            if style < 0.55:
                local = f"{f}.{last_ascii}"
            elif style < 0.75:
                local = f"{f[0]}.{last_ascii}"
            elif style < 0.9:
                local = f"{f}{last_ascii}"
            else:
                local = f"{f}.{last_ascii}{self.rng.randint(70, 99)}"
            email = f"{local}@{self.rng.choice(EMAIL_DOMAINS)}"
            if email not in self.emails:
                self.emails.add(email)
                return email

    def customer(self, external_id: str, used: set[str]) -> CustomerPlan:
        while True:
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            if f"{first} {last}" not in used:
                break
        name = f"{first} {last}"
        used.add(name)
        country = self.rng.choices(list(COUNTRY_WEIGHTS), list(COUNTRY_WEIGHTS.values()))[0]
        source = self.rng.choices(list(SOURCE_WEIGHTS), list(SOURCE_WEIGHTS.values()))[0]
        return CustomerPlan(
            external_id=external_id,
            name=name,
            email=self.email(first, last),
            source=source,
            address=self.address(name, country),
            country=country,
        )

    def crowd_customer(
        self, external_id: str, sources: dict[AcquisitionSource | None, int]
    ) -> CustomerPlan:
        """A customer of the crowd (bot/demo/crowd.py): names may repeat, emails do not."""
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        name = f"{first} {last}"
        country = self.rng.choices(list(COUNTRY_WEIGHTS), list(COUNTRY_WEIGHTS.values()))[0]
        source = self.rng.choices(list(sources), list(sources.values()))[0]
        return CustomerPlan(
            external_id=external_id,
            name=name,
            email=self.email(first, last),
            source=source,
            address=self.address(name, country),
            country=country,
        )

    def readme_customers(self) -> list[CustomerPlan]:
        people = (
            (
                "C1001",
                "Jane Doe",
                "jane.doe@example.com",
                AcquisitionSource.search,
                "Jane Doe, Kastanienallee 21, 10435 Berlin, Germany",
                "Germany",
            ),
            (
                "C1002",
                "Tom Becker",
                "tom.becker@example.com",
                AcquisitionSource.friend,
                "Tom Becker, Bergmannstraße 5, 10961 Berlin, Germany",
                "Germany",
            ),
            (
                "C1003",
                "Priya Shah",
                "priya.shah@example.com",
                AcquisitionSource.social,
                "Priya Shah, Keizersgracht 142, 1015 CX Amsterdam, Netherlands",
                "Netherlands",
            ),
        )
        plans = []
        for external_id, name, email, source, address, country in people:
            self.emails.add(email)
            plans.append(
                CustomerPlan(external_id, name, email, source, address, country, readme=True)
            )
        return plans

    # orders ---------------------------------------------------------------------------

    def carrier(self, country: str) -> str:
        return self.rng.choices(CARRIERS, CARRIER_WEIGHTS[country])[0]

    def tracking(self, carrier: str) -> str:
        def digits(n: int) -> str:
            return "".join(self.rng.choice("0123456789") for _ in range(n))

        if carrier == "DHL":
            return "00340434" + digits(12)
        if carrier == "DPD":
            return "0" + digits(13)
        if carrier == "UPS":
            shipper = "".join(self.rng.choice("0123456789ABCDEFGHJKLMNPRSTVWXYZ") for _ in range(6))
            return f"1Z{shipper}{digits(10)}"
        if carrier == "PostNL":
            letters = "".join(self.rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(4))
            return f"3S{letters}{digits(7)}"
        return digits(11)  # GLS

    def items(self) -> list[tuple[str, str, int, Decimal]]:
        count = self.rng.choices((1, 2, 3), (55, 30, 15))[0]
        chosen = self.rng.sample(PRODUCTS, count)
        rows = []
        for product in chosen:
            quantity = 1
            if product.category == "coffee" or product.sku in {"CLO-0112", "HOM-0257"}:
                quantity = self.rng.choices((1, 2, 3), (60, 30, 10))[0]
            rows.append((product.sku, product.name, quantity, product.price))
        return rows

    def ship(self, plan: OrderPlan, delivered: bool) -> None:
        """Shipping timeline from placed_at; stops at `now` (still in transit)."""
        shipped = plan.placed_at + self.hours(8, 40)
        if shipped > self.now:
            plan.status = OrderStatus.placed  # still being packed
            return
        carrier = plan.carrier or self.carrier(plan.customer.country)
        plan.carrier, plan.tracking = carrier, self.tracking(carrier)
        plan.shipped_at = shipped
        plan.estimated_delivery = (shipped + timedelta(days=self.rng.choice((2, 2, 3)))).replace(
            hour=18, minute=0, second=0, microsecond=0
        )
        plan.late = self.rng.random() < LATE_PROBABILITY[carrier]
        if plan.late:
            arrival = plan.estimated_delivery + self.hours(16, 110)
        else:
            span = (plan.estimated_delivery - shipped).total_seconds() / 3600
            arrival = shipped + self.hours(16, max(17.0, span - 1))
        if delivered and arrival <= self.now:
            plan.delivered_at = arrival
        else:
            plan.status = OrderStatus.shipped
            plan.late = plan.estimated_delivery < self.now

    def one_time(
        self, customer: CustomerPlan, placed_at: datetime, status: OrderStatus
    ) -> OrderPlan:
        plan = OrderPlan(
            customer=customer,
            placed_at=placed_at,
            status=status,
            items=self.items(),
            opened_at=placed_at - self.days(0.5, 9),
        )
        if status is OrderStatus.cancelled:
            plan.cancelled_at = min(placed_at + self.hours(0.3, 20), self.now)
            return plan
        if status is OrderStatus.placed:
            return plan
        self.ship(plan, delivered=status is not OrderStatus.shipped)
        eta = plan.estimated_delivery
        if eta is None:
            return plan
        if plan.delivered_at is None:
            if plan.late and self.rng.random() < 0.5:
                plan.support, plan.support_at = "late", eta + self.hours(10, 40)
            return plan
        if status in (OrderStatus.returned, OrderStatus.refunded):
            self.non_coffee_first(plan)
            plan.return_requested_at = plan.delivered_at + self.days(1, 14)
            plan.support, plan.support_at = "return", plan.return_requested_at
            if status is OrderStatus.refunded:
                plan.refunded_at = plan.return_requested_at + self.days(3, 10)
            return plan
        roll = self.rng.random()
        if plan.late and roll < 0.45:
            plan.support, plan.support_at = "late", eta + self.hours(10, 40)
            if plan.support_at >= plan.delivered_at:
                plan.support_at = plan.delivered_at - self.hours(1, 3)
        elif roll < 0.55:
            pass
        elif roll < 0.63 or (plan.carrier == "DPD" and roll < 0.70):
            plan.support, plan.support_at = "damaged", plan.delivered_at + self.hours(2, 70)
            self.non_coffee_first(plan)
        elif roll < 0.66:
            plan.support, plan.support_at = "wrong_item", plan.delivered_at + self.hours(2, 48)
        elif roll < 0.69:
            plan.support, plan.support_at = "billing", plan.placed_at + self.hours(20, 60)
        return plan

    def non_coffee_first(self, plan: OrderPlan) -> None:
        """Returns and breakages are about a fragile or wearable item, not a bag of beans."""
        rank = {"kitchen": 0, "home": 1, "clothing": 2, "coffee": 3}
        plan.items.sort(key=lambda item: rank[PRODUCT_BY_SKU[item[0]].category])
        if PRODUCT_BY_SKU[plan.items[0][0]].category == "coffee":
            product = self.rng.choice([p for p in PRODUCTS if p.category != "coffee"])
            plan.items.insert(0, (product.sku, product.name, 1, product.price))

    def customer_orders(self, customer: CustomerPlan) -> list[OrderPlan]:
        count = self.rng.choices((1, 2, 3, 4, 5), (40, 32, 16, 8, 4))[0]
        ages = sorted((HISTORY_DAYS - 5) * self.rng.random() ** 1.25 + 2 for _ in range(count))
        return [
            self.one_time(customer, self.now - timedelta(days=age), self.status(age))
            for age in ages
        ]

    def status(self, age_days: float) -> OrderStatus:
        if age_days < 1.3:
            return self.rng.choices((OrderStatus.placed, OrderStatus.cancelled), (88, 12))[0]
        if age_days < 45:
            return self.rng.choices((OrderStatus.delivered, OrderStatus.cancelled), (94, 6))[0]
        return self.rng.choices(
            (
                OrderStatus.delivered,
                OrderStatus.returned,
                OrderStatus.refunded,
                OrderStatus.cancelled,
            ),
            (79, 7, 8, 6),
        )[0]

    def readme_orders(
        self, jane: CustomerPlan, tom: CustomerPlan, priya: CustomerPlan
    ) -> list[OrderPlan]:
        now = self.now

        def order(
            customer: CustomerPlan,
            number: str,
            status: OrderStatus,
            skus: tuple[str, ...],
            placed_days: float,
            carrier: str | None = None,
        ) -> OrderPlan:
            items = [(s, PRODUCT_BY_SKU[s].name, 1, PRODUCT_BY_SKU[s].price) for s in skus]
            placed = now - timedelta(days=placed_days)
            return OrderPlan(
                customer=customer,
                placed_at=placed,
                status=status,
                items=items,
                opened_at=placed - timedelta(days=2, hours=5),
                number=number,
                carrier=carrier,
                tracking=self.tracking(carrier) if carrier else None,
                scripted=True,
            )

        a1 = order(jane, "A10001", OrderStatus.delivered, ("KIT-0142", "HOM-0257"), 6.2, "DHL")
        a1.shipped_at = now - timedelta(days=5, hours=3)
        a1.estimated_delivery = (now - timedelta(days=3)).replace(
            hour=18, minute=0, second=0, microsecond=0
        )
        a1.delivered_at = now - timedelta(days=3, hours=1)
        a1.delivery_survey = False
        a2 = order(jane, "A10002", OrderStatus.placed, ("CLO-0107",), 0.2)
        a3 = order(tom, "A10003", OrderStatus.shipped, ("KIT-0166", "KIT-0188"), 9.3, "DPD")
        a3.shipped_at = now - timedelta(days=8, hours=2)
        a3.estimated_delivery = (now - timedelta(days=5)).replace(
            hour=18, minute=0, second=0, microsecond=0
        )
        a3.late = True
        a4 = order(tom, "A10004", OrderStatus.cancelled, ("CLO-0131",), 40.4)
        a4.cancelled_at = a4.placed_at + timedelta(hours=2, minutes=14)
        a4.cancel_comment = "Ordered the wrong colour by mistake, cancelling in the chat was easy."
        a5 = order(priya, "A10005", OrderStatus.refunded, ("HOM-0241",), 70.1, "PostNL")
        a5.shipped_at = a5.placed_at + timedelta(hours=20)
        a5.estimated_delivery = (a5.placed_at + timedelta(days=3)).replace(
            hour=18, minute=0, second=0, microsecond=0
        )
        a5.delivered_at = a5.placed_at + timedelta(days=2, hours=5)
        a5.return_requested_at = a5.delivered_at + timedelta(hours=3)
        a5.refunded_at = a5.return_requested_at + timedelta(days=6, hours=2)
        a5.support, a5.support_at = "damaged", a5.return_requested_at
        a5.delivery_survey = False
        a5.complaint = "The Ceramic Table Lamp Sand arrived with a big crack in the base."
        a5.support_score = 4
        a5.support_comment = (
            "The agent booked the return in minutes, shame the lamp arrived broken."
        )
        a6 = order(priya, "A10006", OrderStatus.delivered, ("HOM-0203", "HOM-0218"), 92.8, "PostNL")
        a6.delivered_at = now - timedelta(days=90)
        a6.shipped_at = a6.delivered_at - timedelta(hours=44)
        a6.placed_at = a6.shipped_at - timedelta(hours=22)
        a6.opened_at = a6.placed_at - timedelta(days=3, hours=7)
        a6.estimated_delivery = (a6.delivered_at + timedelta(days=1)).replace(
            hour=18, minute=0, second=0, microsecond=0
        )
        a6.delivery_survey = True
        a6.delivery_score = 5
        a6.delivery_comment = "Arrived on time and beautifully packed, the duvet cover is lovely."
        return [a1, a2, a3, a4, a5, a6]

    # subscriptions --------------------------------------------------------------------

    def subscription(
        self, customer: CustomerPlan, status: SubscriptionStatus, jane: bool = False
    ) -> SubscriptionPlan:
        plan, sku, price = SUBSCRIPTION_PLANS[0] if jane else self.rng.choice(SUBSCRIPTION_PLANS)
        if status is SubscriptionStatus.active:
            last = _day_1_to_28(self.now - (timedelta(days=12) if jane else self.days(0.3, 27)))
            periods = 7 if jane else self.rng.randint(3, 12)
        else:
            last = _day_1_to_28(self.now - self.days(35, 330))
            periods = self.rng.randint(3, 9)
        last = last.replace(hour=6, minute=0, second=0, microsecond=0)
        earliest = self.now - timedelta(days=HISTORY_DAYS)
        starts = [add_months(last, -k) for k in range(periods - 1, -1, -1)]
        starts = [start for start in starts if start >= earliest]
        sub = SubscriptionPlan(customer, plan, sku, price, status, starts)
        if status is SubscriptionStatus.paused:
            sub.paused_at = starts[-1] + self.days(5, 25)
        elif status is SubscriptionStatus.cancelled:
            sub.cancelled_at = starts[-1] + self.days(5, 25)
        return sub

    def subscription_orders(self, sub: SubscriptionPlan) -> list[OrderPlan]:
        plans = []
        for index, start in enumerate(sub.period_starts):
            price = (
                sub.price if start >= self.now - timedelta(days=120) else sub.price - PRICE_INCREASE
            )
            label = f"{sub.plan} ({start:%B %Y})"
            plan = OrderPlan(
                customer=sub.customer,
                placed_at=start,
                status=OrderStatus.delivered,
                items=[(sub.sku, label, 1, price)],
                opened_at=start,
                subscription=sub,
                period_end=add_months(start, 1),
                last_period=index == len(sub.period_starts) - 1,
            )
            age = self.now - start
            if age < timedelta(hours=20):
                plan.status = OrderStatus.placed
            else:
                self.ship(plan, delivered=True)
                if plan.delivered_at is not None and self.rng.random() < 0.07:
                    plan.support, plan.support_at = (
                        "box_damaged",
                        plan.delivered_at + self.hours(2, 30),
                    )
                    if self.rng.random() < 0.5 and plan.support_at + timedelta(days=3) < self.now:
                        plan.status = OrderStatus.refunded
                        plan.return_requested_at = plan.support_at
                        plan.refunded_at = plan.support_at + self.days(1, 3)
            plans.append(plan)
        return plans
