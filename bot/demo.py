"""Demo shop data: customers, orders, subscriptions, lifecycles, surveys and feedback.

`load_demo_data` fills an empty database with two years of history of a small online shop
selling clothing, home goods, kitchenware and monthly coffee subscription boxes (EUR).
The history is replayed through the domain layer: every order gets its lifecycle from
`lifecycle.lifecycle_for_order`, stages move with the order's status (`sync_with_order`,
`advance`) and feedback is written with `feedback.record`, so each row carries the stage
its lifecycle was in at that moment and its sentiment and themes.

Built-in findings for the dashboard to show:

* delivery CSAT after `order_delivered` surveys is clearly worse for DPD parcels
  (late and damaged parcels, rude couriers);
* the support stage scores lower than every other stage (CSAT ~3, CES above 4);
* purchase CSAT drops for about five weeks some 4-5 months ago (a checkout bug);
* subscription NPS drops after the price increase four months ago, churn reasons follow;
* the Merino Wool Crew Jumper collects poor storefront reviews (pilling).

The customers used in the README (C1001 Jane Doe, C1002 Tom Becker, C1003 Priya Shah) and
their orders A10001-A10006 are fixed; none of them was sent a survey in the last 14 days.
"""

from __future__ import annotations

import random
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import demo_crowd, demo_support
from bot.domain import feedback as feedback_domain
from bot.domain import lifecycle as lifecycles
from bot.domain import surveys
from bot.domain.feedback import NewFeedback
from bot.domain.scores import SCALES
from bot.storage.models import (
    AcquisitionSource,
    Channel,
    Customer,
    Feedback,
    FeedbackKind,
    FeedbackSource,
    Lifecycle,
    LifecycleKind,
    Order,
    OrderItem,
    OrderStatus,
    Stage,
    Subscription,
    SubscriptionStatus,
    SurveyDispatch,
)

MARKER_EXTERNAL_ID = "C1001"
CURRENCY = "EUR"
HISTORY_DAYS = 725
RETURN_WINDOW = timedelta(days=30)
FATIGUE = timedelta(days=7)
SURVEY_EXPIRY = timedelta(days=14)
# README customers: no survey sent within this period before `now` (fatigue would
# otherwise suppress the in-chat surveys shown in manual testing).
README_QUIET = timedelta(days=15)


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


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    price: Decimal
    category: str


def _p(sku: str, name: str, price: str, category: str) -> Product:
    return Product(sku, name, Decimal(price), category)


PRODUCTS: tuple[Product, ...] = (
    _p("CLO-0107", "Merino Wool Crew Jumper", "89.00", "clothing"),
    _p("CLO-0112", "Organic Cotton T-Shirt", "29.00", "clothing"),
    _p("CLO-0125", "Linen Button-Down Shirt", "59.00", "clothing"),
    _p("CLO-0131", "Waxed Cotton Field Jacket", "179.00", "clothing"),
    _p("CLO-0140", "Chunky Knit Beanie", "24.00", "clothing"),
    _p("CLO-0156", "Selvedge Denim Jeans Straight Fit", "119.00", "clothing"),
    _p("CLO-0163", "Cashmere Blend Scarf", "69.00", "clothing"),
    _p("HOM-0203", "Linen Duvet Cover 200×200 cm", "139.00", "home"),
    _p("HOM-0218", "Stonewashed Linen Cushion Cover 50×50 cm", "34.00", "home"),
    _p("HOM-0224", "Herringbone Wool Throw", "99.00", "home"),
    _p("HOM-0236", "Soy Candle Fig & Cedar 220 g", "26.00", "home"),
    _p("HOM-0241", "Ceramic Table Lamp Sand", "119.00", "home"),
    _p("HOM-0257", "Waffle Cotton Bath Towel", "32.00", "home"),
    _p("HOM-0262", "Oak Serving Board Large", "49.00", "home"),
    _p("KIT-0142", "Enamel Cast-Iron Casserole 24 cm", "189.00", "kitchen"),
    _p("KIT-0151", "Carbon Steel Frying Pan 28 cm", "64.00", "kitchen"),
    _p("KIT-0166", "Damascus Chef's Knife 20 cm", "149.00", "kitchen"),
    _p("KIT-0173", "Stoneware Dinner Plate Set of 4", "72.00", "kitchen"),
    _p("KIT-0188", "Ceramic Pour-Over Coffee Dripper", "28.00", "kitchen"),
    _p("KIT-0194", "Gooseneck Kettle 1 L", "79.00", "kitchen"),
    _p("KIT-0197", "Glass Storage Jars Set of 3", "36.00", "kitchen"),
    _p("KIT-0205", "Manual Burr Coffee Grinder", "59.00", "kitchen"),
    _p("COF-0301", "Ethiopia Yirgacheffe Whole Bean 250 g", "14.50", "coffee"),
    _p("COF-0304", "Colombia Huila Decaf 250 g", "13.90", "coffee"),
    _p("COF-0312", "House Espresso Blend 1 kg", "39.00", "coffee"),
)
PRODUCT_BY_SKU = {product.sku: product for product in PRODUCTS}
PILLING_SKU = "CLO-0107"

# plan, sku, price now (the price went up by 2.00 EUR four months ago)
SUBSCRIPTION_PLANS: tuple[tuple[str, str, Decimal], ...] = (
    ("Coffee Explorer Box", "SUB-0401", Decimal("24.00")),
    ("Espresso Lovers Box", "SUB-0402", Decimal("26.00")),
    ("Single Origin Duo", "SUB-0403", Decimal("29.00")),
    ("Decaf Discovery Box", "SUB-0404", Decimal("19.00")),
)
PRICE_INCREASE = Decimal("2.00")

CARRIERS = ("DHL", "DPD", "UPS", "PostNL", "GLS")
CARRIER_WEIGHTS: dict[str, tuple[int, int, int, int, int]] = {
    "Germany": (40, 28, 15, 0, 17),
    "Netherlands": (20, 18, 12, 50, 0),
    "Belgium": (0, 30, 20, 25, 25),
    "Austria": (25, 30, 20, 0, 25),
}
LATE_PROBABILITY = {"DHL": 0.07, "DPD": 0.35, "UPS": 0.08, "PostNL": 0.12, "GLS": 0.15}
DELIVERY_CSAT_MEAN = {"DHL": 4.4, "DPD": 3.0, "UPS": 4.3, "PostNL": 4.2, "GLS": 4.0}

FIRST_NAMES = (
    "Anna", "Lukas", "Sophie", "Jonas", "Emma", "Finn", "Mia", "Noah", "Lena", "Elias", "Sara",
    "Daan", "Fleur", "Bram", "Lotte", "Sem", "Julia", "Luca", "Chloé", "Louis", "Camille",
    "Hugo", "Marta", "Pablo", "Giulia", "Matteo", "Aisha", "Omar", "Mei", "Kenji", "Olivia",
    "Liam", "Hannah", "Ben", "Clara", "Felix", "Inês", "Tiago", "Nora", "Emil", "Freya",
    "Oskar", "Zofia", "Jakub", "Elif", "Can", "Amara", "Kwame", "Sanne", "Ruben",
)  # fmt: skip
LAST_NAMES = (
    "Müller", "Schmidt", "Fischer", "Weber", "Wagner", "de Vries", "Jansen", "van Dijk",
    "Bakker", "Visser", "Peeters", "Janssens", "Dubois", "Laurent", "Martin", "García", "Rossi",
    "Bianchi", "Novak", "Kowalski", "Yılmaz", "Haddad", "Chen", "Tanaka", "O'Brien", "Murphy",
    "Nielsen", "Larsen", "Andersson", "Costa", "Silva", "Hoffmann", "Koch", "Meijer",
    "Hendriks", "Bauer", "Wolf", "Schäfer", "Lehmann", "Okafor",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")

COUNTRIES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "Germany": (
        ("Berlin", ("10115", "10245", "10435", "10961", "12043", "13353")),
        ("Hamburg", ("20095", "20357", "22765")),
        ("München", ("80331", "80469", "81667")),
        ("Köln", ("50667", "50733", "50937")),
        ("Leipzig", ("04103", "04275")),
        ("Frankfurt am Main", ("60311", "60316", "60594")),
    ),
    "Netherlands": (
        ("Amsterdam", ("1015", "1017", "1052", "1073")),
        ("Utrecht", ("3511", "3512", "3581")),
        ("Rotterdam", ("3011", "3014", "3024")),
        ("Den Haag", ("2511", "2514", "2582")),
        ("Eindhoven", ("5611", "5621")),
    ),
    "Belgium": (
        ("Brussel", ("1000", "1050", "1060")),
        ("Antwerpen", ("2000", "2018")),
        ("Gent", ("9000",)),
        ("Leuven", ("3000",)),
    ),
    "Austria": (
        ("Wien", ("1010", "1060", "1070", "1090")),
        ("Graz", ("8010",)),
        ("Salzburg", ("5020",)),
        ("Linz", ("4020",)),
    ),
}
STREETS = {
    "Germany": ("Kastanienallee", "Bergmannstraße", "Schillerstraße", "Goethestraße",
                "Lindenstraße", "Friedrichstraße", "Eichendorffstraße", "Am Wasserturm"),
    "Netherlands": ("Keizersgracht", "Prinsengracht", "Oudegracht", "Kerkstraat",
                    "Vondelstraat", "Witte de Withstraat", "Zeestraat"),
    "Belgium": ("Kouter", "Meir", "Bondgenotenlaan", "Rue de la Loi", "Veldstraat"),
    "Austria": ("Mariahilfer Straße", "Neubaugasse", "Herrengasse", "Landstraßer Hauptstraße"),
}  # fmt: skip
COUNTRY_WEIGHTS = {"Germany": 45, "Netherlands": 25, "Belgium": 15, "Austria": 15}
SOURCE_WEIGHTS: dict[AcquisitionSource | None, int] = {
    AcquisitionSource.search: 22,
    AcquisitionSource.social: 18,
    AcquisitionSource.friend: 14,
    AcquisitionSource.ad: 12,
    AcquisitionSource.affiliate: 7,
    AcquisitionSource.marketing_email: 8,
    AcquisitionSource.other: 5,
    None: 14,
}

# Texts by topic and tone ("pos", "mixed", "neg"); {carrier}, {product}, {plan} are filled in.
TEXTS: dict[str, dict[str, tuple[str, ...]]] = {
    "delivery": {
        "pos": (
            "Arrived a day early and really well packed.",
            "Super fast delivery, the {carrier} driver was friendly.",
            "Parcel arrived on time and the tracking was spot on.",
            "Quick delivery, everything in perfect condition.",
            "Delivered the next day, very impressed!",
            "Great packaging, no plastic, and it arrived quickly.",
        ),
        "mixed": (
            "Delivery took a bit longer than promised but the items were fine.",
            "Arrived okay, the packaging could be less wasteful.",
            "Fine, though the {carrier} delivery window was very vague.",
            "Parcel was left with a neighbour without a note, but nothing was missing.",
        ),
        "neg": (
            "Delivery was late by several days and the {carrier} tracking never updated.",
            "The {carrier} courier was rude and left the parcel in the rain.",
            "Box arrived damaged, one corner completely crushed.",
            "{carrier} marked it as delivered but it only turned up two days later at a neighbour's.",
            "Waited at home all day and the {carrier} courier never came. Very annoying.",
            "Late delivery again with {carrier}. Please use another courier.",
            "The parcel was thrown over the fence and the box was dented. Not acceptable.",
        ),
    },
    "purchase": {
        "pos": (
            "Checkout was quick and easy.",
            "Smooth ordering, paid with PayPal in seconds.",
            "Great selection and easy to find what I wanted.",
            "Lovely website, ordering took two minutes.",
            "Easy checkout and a nice order confirmation email.",
        ),
        "mixed": (
            "Ordering was okay but the delivery options are limited.",
            "Bit confusing to choose a delivery slot, otherwise fine.",
            "Shipping costs only showed up at the last step.",
        ),
        "neg": (
            "The discount code didn't work at checkout, really frustrating.",
            "Site was very slow and the page crashed once during checkout.",
            "Shipping costs only appeared at the very last step. Annoying and sneaky.",
        ),
    },
    "checkout_bug": {
        "neg": (
            "Checkout bug: the payment page kept reloading and I was nearly charged twice.",
            "The checkout page crashed after I entered my address. Had to start over, terrible.",
            "Got an error at payment but was still charged. Not happy at all.",
            "Card payment failed three times before it went through. Awful checkout.",
            "The site logged me out in the middle of checkout and emptied my basket.",
        ),
    },
    "product_clothing": {
        "pos": (
            "The {product} fits perfectly and feels great.",
            "Great quality, the {product} washes really well.",
            "Lovely fabric, the {product} looks even better in person.",
        ),
        "mixed": (
            "Nice {product}, but the sizing runs a bit small.",
            "Good quality, though the colour is darker than in the photos.",
        ),
        "neg": (
            "The colour of the {product} looks nothing like the photos. Disappointed.",
            "Seams on the {product} came apart after one wash. Poor quality.",
        ),
    },
    "product_home": {
        "pos": (
            "The {product} is beautiful and so well made.",
            "Love the {product}, it makes the whole room feel cosy.",
            "Excellent quality, the {product} is even nicer than expected.",
        ),
        "mixed": (
            "The {product} is nice but smaller than I expected.",
            "Good quality, but the {product} is a little overpriced.",
        ),
        "neg": (
            "The {product} broke within a week. Cheap and flimsy.",
            "The {product} arrived with a stain, really disappointing.",
        ),
    },
    "product_kitchen": {
        "pos": (
            "The {product} is stunning and cooks beautifully.",
            "Best purchase this year, the {product} is excellent.",
            "Really solid {product}, great value for money.",
        ),
        "mixed": (
            "The {product} works well, but it is heavier than I thought.",
            "Decent {product}, though the price is on the high side.",
        ),
        "neg": (
            "The {product} warped after a week on the induction hob. Awful.",
            "The {product} arrived chipped and scratched. Poor quality control.",
        ),
    },
    "product_coffee": {
        "pos": (
            "The {product} is fantastic, fruity and bright.",
            "Great coffee, freshly roasted and delicious.",
        ),
        "mixed": ("Nice coffee, but the bag is smaller than I expected.",),
        "neg": ("The beans tasted stale, the roast date was over a month old.",),
    },
    "pilling": {
        "neg": (
            "The jumper started pilling after two washes. Poor quality for the price.",
            "Pilled badly under the arms within a week. Not worth 89 euros.",
            "Lovely colour, but the wool pills terribly. Disappointed.",
        ),
        "mixed": ("Soft and warm, but it already shows some pilling.",),
        "pos": ("Soft and warm, no pilling so far.",),
    },
    "support": {
        "pos": (
            "The agent was really helpful and sorted it in minutes.",
            "Quick refund, no questions asked. Thank you!",
            "Friendly support, they sent a replacement right away.",
            "Great service, the agent was patient and kind.",
        ),
        "mixed": (
            "Got there in the end, but it took a few emails.",
            "Problem solved, though the return label took a while.",
            "Support was polite but it took three days to get an answer.",
        ),
        "neg": (
            "Waited four days for a response from support. Unacceptable.",
            "Had to explain the problem three times to different agents.",
            "Support was polite but nothing actually got fixed.",
            "Still waiting for my refund after two weeks, terrible service.",
            "On hold for 25 minutes on the phone, then got cut off.",
            "The agent was rude and kept sending me template answers.",
        ),
    },
    "in_chat": {
        "pos": (
            "Quick answer, thanks!",
            "Easy to check my order here, great.",
            "Helpful, I got the tracking link straight away.",
        ),
        "mixed": ("Okay, but I had to ask twice.",),
        "neg": (
            "The bot didn't understand my question.",
            "Useless, I just wanted to talk to a person.",
        ),
    },
    "subscription": {
        "pos": (
            "Love the {plan}, every month is a nice surprise.",
            "Great coffee, always fresh. Best subscription I have.",
            "The tasting notes card in the box is a lovely touch.",
            "Really enjoying the monthly box, the last Kenyan was amazing.",
        ),
        "mixed": (
            "Good coffee, but the new price is a bit steep.",
            "Nice selection, but the delivery day varies too much.",
            "Some months are great, some roasts are not for me.",
        ),
        "neg": (
            "Price too high since the increase, thinking of cancelling.",
            "Box arrived damaged and half the beans spilled.",
            "Too much coffee piling up, I can't get through it.",
            "The last two roasts were far too dark for my taste. Disappointing.",
            "Paying more for the same box is not okay. Very disappointed.",
        ),
    },
    "discovery": {
        "pos": (
            "Love the look of the new linen range!",
            "Your kitchen things look gorgeous, can't wait to order.",
            "Beautiful photos, the casserole colours are lovely.",
        ),
        "mixed": (
            "Prices seem a bit high compared to other shops.",
            "Nice products, do you ship to Austria?",
        ),
        "neg": ("Ads everywhere and the site is so slow to load.",),
    },
    "research": {
        "mixed": (
            "Does the casserole work on induction?",
            "What's the difference between sizes M and L for the jumper?",
            "Is the linen pre-washed? Will it shrink?",
            "How long does delivery to Belgium usually take?",
            "Are the coffee beans roasted to order?",
            "Is the chef's knife dishwasher safe?",
            "Can I pause the coffee subscription if I go on holiday?",
        ),
    },
}
COMPLAINTS: dict[str, tuple[str, ...]] = {
    "late": (
        "My order {number} is late and the {carrier} tracking hasn't moved for days.",
        "Where is my parcel? It was due days ago and {carrier} says nothing.",
        "Order {number} still not here, this is the second time with {carrier}.",
    ),
    "damaged": (
        "The {product} arrived broken. The box was crushed.",
        "My {product} was damaged in transit, there's a big crack in it.",
        "Parcel arrived torn open and the {product} is scratched.",
    ),
    "wrong_item": (
        "I received the wrong item, I ordered the {product}.",
        "Wrong size sent, I ordered a medium {product}.",
    ),
    "billing": (
        "I was charged twice for order {number}.",
        "The invoice for order {number} shows the wrong amount.",
        "My card was charged but the order page says payment failed.",
    ),
    "return": (
        "I'd like to return the {product}, it's not what I expected.",
        "The {product} is not as described, I want my money back.",
        "I want to return the {product}, it arrived damaged.",
        "Please send me a return label for the {product}.",
    ),
    "box_damaged": (
        "My coffee box arrived damaged and the bag was split open.",
        "This month's box never arrived, tracking says delivered.",
    ),
}
CHURN_REASONS: dict[str, tuple[str, ...]] = {
    "price": (
        "Too expensive since the price increase.",
        "Paying more for the same box isn't worth it for me.",
        "Money is tight at the moment.",
    ),
    "other": (
        "I have too much coffee at home, need a break.",
        "Moving abroad and you don't ship there.",
        "Didn't enjoy the darker roasts lately.",
        "Switched to a local roaster.",
        "Deliveries were late too often.",
    ),
}
PAUSE_COMMENTS = (
    "Going travelling for a couple of months, will resume after.",
    "Still have two bags left, pausing for now.",
    "Pausing over the summer, will be back in autumn.",
)
DISCOVERY_ANSWERS: dict[AcquisitionSource | None, tuple[str, ...]] = {
    AcquisitionSource.search: ("Google search", "Found you on Google looking for a casserole"),
    AcquisitionSource.social: ("Instagram", "Saw a post on Instagram", "A TikTok video"),
    AcquisitionSource.friend: ("A friend recommended you", "My sister told me about you"),
    AcquisitionSource.ad: ("An ad on YouTube", "Saw an ad on Facebook"),
    AcquisitionSource.affiliate: ("A review on a cooking blog", "A coffee blog's gift guide"),
    AcquisitionSource.marketing_email: ("Your newsletter", "An email with a discount code"),
    AcquisitionSource.other: ("Saw your stand at a Christmas market", "A podcast mention"),
    None: ("Can't remember, honestly", "Not sure"),
}


# --- plans -----------------------------------------------------------------------------


@dataclass
class _CustomerPlan:
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
class _SubscriptionPlan:
    customer: _CustomerPlan
    plan: str
    sku: str
    price: Decimal
    status: SubscriptionStatus
    period_starts: list[datetime]
    paused_at: datetime | None = None
    cancelled_at: datetime | None = None
    id: int = 0


@dataclass
class _OrderPlan:
    customer: _CustomerPlan
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
    subscription: _SubscriptionPlan | None = None
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


@dataclass
class _Counts:
    customers: int = 0
    orders: int = 0
    subscriptions: int = 0
    feedback: int = 0
    dispatches: int = 0
    lifecycle_ids: set[int] = field(default_factory=set)


def _ascii(text: str) -> str:
    for src, dst in (("ü", "ue"), ("ö", "oe"), ("ä", "ae"), ("ß", "ss"), ("ı", "i")):
        text = text.replace(src, dst)
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def _add_months(value: datetime, months: int) -> datetime:
    index = value.month - 1 + months
    return value.replace(year=value.year + index // 12, month=index % 12 + 1)


def _day_1_to_28(value: datetime) -> datetime:
    return value - timedelta(days=max(0, value.day - 28))


class _Planner:
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

    def customer(self, external_id: str, used: set[str]) -> _CustomerPlan:
        while True:
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            if f"{first} {last}" not in used:
                break
        name = f"{first} {last}"
        used.add(name)
        country = self.rng.choices(list(COUNTRY_WEIGHTS), list(COUNTRY_WEIGHTS.values()))[0]
        source = self.rng.choices(list(SOURCE_WEIGHTS), list(SOURCE_WEIGHTS.values()))[0]
        return _CustomerPlan(
            external_id=external_id,
            name=name,
            email=self.email(first, last),
            source=source,
            address=self.address(name, country),
            country=country,
        )

    def crowd_customer(
        self, external_id: str, sources: dict[AcquisitionSource | None, int]
    ) -> _CustomerPlan:
        """A customer of the crowd (bot/demo_crowd.py): names may repeat, emails do not."""
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        name = f"{first} {last}"
        country = self.rng.choices(list(COUNTRY_WEIGHTS), list(COUNTRY_WEIGHTS.values()))[0]
        source = self.rng.choices(list(sources), list(sources.values()))[0]
        return _CustomerPlan(
            external_id=external_id,
            name=name,
            email=self.email(first, last),
            source=source,
            address=self.address(name, country),
            country=country,
        )

    def readme_customers(self) -> list[_CustomerPlan]:
        people = (
            ("C1001", "Jane Doe", "jane.doe@example.com", AcquisitionSource.search,
             "Jane Doe, Kastanienallee 21, 10435 Berlin, Germany", "Germany"),
            ("C1002", "Tom Becker", "tom.becker@example.com", AcquisitionSource.friend,
             "Tom Becker, Bergmannstraße 5, 10961 Berlin, Germany", "Germany"),
            ("C1003", "Priya Shah", "priya.shah@example.com", AcquisitionSource.social,
             "Priya Shah, Keizersgracht 142, 1015 CX Amsterdam, Netherlands", "Netherlands"),
        )  # fmt: skip
        plans = []
        for external_id, name, email, source, address, country in people:
            self.emails.add(email)
            plans.append(
                _CustomerPlan(external_id, name, email, source, address, country, readme=True)
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

    def ship(self, plan: _OrderPlan, delivered: bool) -> None:
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
        self, customer: _CustomerPlan, placed_at: datetime, status: OrderStatus
    ) -> _OrderPlan:
        plan = _OrderPlan(
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

    def non_coffee_first(self, plan: _OrderPlan) -> None:
        """Returns and breakages are about a fragile or wearable item, not a bag of beans."""
        rank = {"kitchen": 0, "home": 1, "clothing": 2, "coffee": 3}
        plan.items.sort(key=lambda item: rank[PRODUCT_BY_SKU[item[0]].category])
        if PRODUCT_BY_SKU[plan.items[0][0]].category == "coffee":
            product = self.rng.choice([p for p in PRODUCTS if p.category != "coffee"])
            plan.items.insert(0, (product.sku, product.name, 1, product.price))

    def customer_orders(self, customer: _CustomerPlan) -> list[_OrderPlan]:
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
        self, jane: _CustomerPlan, tom: _CustomerPlan, priya: _CustomerPlan
    ) -> list[_OrderPlan]:
        now = self.now

        def order(
            customer: _CustomerPlan,
            number: str,
            status: OrderStatus,
            skus: tuple[str, ...],
            placed_days: float,
            carrier: str | None = None,
        ) -> _OrderPlan:
            items = [(s, PRODUCT_BY_SKU[s].name, 1, PRODUCT_BY_SKU[s].price) for s in skus]
            placed = now - timedelta(days=placed_days)
            return _OrderPlan(
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
        self, customer: _CustomerPlan, status: SubscriptionStatus, jane: bool = False
    ) -> _SubscriptionPlan:
        plan, sku, price = SUBSCRIPTION_PLANS[0] if jane else self.rng.choice(SUBSCRIPTION_PLANS)
        if status is SubscriptionStatus.active:
            last = _day_1_to_28(self.now - (timedelta(days=12) if jane else self.days(0.3, 27)))
            periods = 7 if jane else self.rng.randint(3, 12)
        else:
            last = _day_1_to_28(self.now - self.days(35, 330))
            periods = self.rng.randint(3, 9)
        last = last.replace(hour=6, minute=0, second=0, microsecond=0)
        earliest = self.now - timedelta(days=HISTORY_DAYS)
        starts = [_add_months(last, -k) for k in range(periods - 1, -1, -1)]
        starts = [start for start in starts if start >= earliest]
        sub = _SubscriptionPlan(customer, plan, sku, price, status, starts)
        if status is SubscriptionStatus.paused:
            sub.paused_at = starts[-1] + self.days(5, 25)
        elif status is SubscriptionStatus.cancelled:
            sub.cancelled_at = starts[-1] + self.days(5, 25)
        return sub

    def subscription_orders(self, sub: _SubscriptionPlan) -> list[_OrderPlan]:
        plans = []
        for index, start in enumerate(sub.period_starts):
            price = (
                sub.price if start >= self.now - timedelta(days=120) else sub.price - PRICE_INCREASE
            )
            label = f"{sub.plan} ({start:%B %Y})"
            plan = _OrderPlan(
                customer=sub.customer,
                placed_at=start,
                status=OrderStatus.delivered,
                items=[(sub.sku, label, 1, price)],
                opened_at=start,
                subscription=sub,
                period_end=_add_months(start, 1),
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


# --- writing ---------------------------------------------------------------------------


def _tone(kind: FeedbackKind, score: int) -> str:
    if kind is FeedbackKind.nps:
        return "pos" if score >= 9 else "neg" if score <= 6 else "mixed"
    if kind is FeedbackKind.ces:
        return "pos" if score <= 3 else "neg" if score >= 5 else "mixed"
    return "pos" if score >= 4 else "neg" if score <= 2 else "mixed"


class _Writer:
    """Replays the planned history through the domain layer, in one session."""

    def __init__(self, session: AsyncSession, rng: random.Random, now: datetime) -> None:
        self.session = session
        self.rng = rng
        self.now = now
        self.counts = _Counts()
        self.sent: dict[int, list[datetime]] = defaultdict(list)
        self.ordered: set[int] = set()
        self.bug_window = (now - timedelta(days=165), now - timedelta(days=130))
        self.price_change = now - timedelta(days=120)

    def hours(self, low: float, high: float) -> timedelta:
        return timedelta(hours=self.rng.uniform(low, high))

    def score(self, kind: FeedbackKind, mean: float, sd: float = 0.9) -> int:
        low, high = SCALES[kind.value]
        return max(low, min(high, round(self.rng.gauss(mean, sd))))

    def text(self, topic: str, tone: str, plan: _OrderPlan | None = None) -> str:
        pool = TEXTS[topic]
        options = pool.get(tone) or pool.get("mixed") or next(iter(pool.values()))
        return self.fill(self.rng.choice(options), plan)

    def fill(self, template: str, plan: _OrderPlan | None) -> str:
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
        customer: _CustomerPlan,
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
        customer: _CustomerPlan,
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

    async def add_customers(self, customers: list[_CustomerPlan]) -> None:
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

    async def add_subscriptions(self, subs: list[_SubscriptionPlan]) -> None:
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
                    current_period_end=_add_months(last, 1),
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

    async def add_orders(self, plans: list[_OrderPlan]) -> None:
        """All orders as placed, in bulk; `order` then replays what happened to each."""
        rows = [
            {
                "number": plan.number,
                "customer_id": plan.customer.id,
                "subscription_id": plan.subscription.id if plan.subscription else None,
                "status": OrderStatus.placed,
                "total": sum((price * qty for _s, _n, qty, price in plan.items), Decimal("0.00")),
                "currency": CURRENCY,
                "shipping_address": plan.customer.address,
                "carrier": plan.carrier if plan.shipped_at else None,
                "tracking_number": plan.tracking if plan.shipped_at else None,
                "placed_at": plan.placed_at,
                "shipped_at": plan.shipped_at,
                "estimated_delivery": plan.estimated_delivery,
                "delivered_at": plan.delivered_at,
                "return_requested_at": plan.return_requested_at,
                "refunded_at": plan.refunded_at,
                "cancelled_at": plan.cancelled_at,
            }
            for plan in plans
        ]
        await self.session.execute(insert(Order).execution_options(render_nulls=True), rows)
        loaded = await self.session.scalars(
            select(Order).where(Order.number.in_([plan.number for plan in plans]))
        )
        by_number = {order.number: order for order in loaded}
        items: list[dict[str, object]] = []
        for plan in plans:
            plan.row = by_number[plan.number]
            items.extend(
                {"order_id": plan.row.id, "sku": sku, "name": name, "quantity": qty,
                 "unit_price": price}
                for sku, name, qty, price in plan.items
            )  # fmt: skip
        await self.session.execute(insert(OrderItem), items)
        self.counts.orders += len(plans)

    async def order(self, plan: _OrderPlan) -> None:
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

    async def pre_purchase(self, plan: _OrderPlan) -> Lifecycle:
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
        self, plan: _OrderPlan, lifecycle: Lifecycle, first_order: bool
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

    async def cancel_feedback(self, plan: _OrderPlan, lifecycle: Lifecycle) -> None:
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

    async def in_transit_question(self, plan: _OrderPlan, lifecycle: Lifecycle) -> None:
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

    async def delivery_feedback(self, plan: _OrderPlan, lifecycle: Lifecycle) -> None:
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

    async def use_feedback(self, plan: _OrderPlan, lifecycle: Lifecycle) -> None:
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

    async def support(self, plan: _OrderPlan, lifecycle: Lifecycle) -> datetime | None:
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

    async def subscription_events(self, plan: _OrderPlan, lifecycle: Lifecycle) -> None:
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

    async def open_journey(self, customer: _CustomerPlan, opened_at: datetime) -> None:
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

    `crowd` more customers get a year of orders and feedback in bulk (bot/demo_crowd.py):
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
    planner = _Planner(rng, now)
    jane, tom, priya = planner.readme_customers()
    used = {jane.name, tom.name, priya.name}
    regulars = [planner.customer(f"C{1004 + i}", used) for i in range(64)]
    browsers = [planner.customer(f"C{1068 + i}", used) for i in range(5)]

    orders = planner.readme_orders(jane, tom, priya)
    generated: list[_OrderPlan] = []
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

    writer = _Writer(session, rng, now)
    await writer.add_customers([jane, tom, priya, *regulars, *browsers])
    await writer.add_subscriptions(subs)
    await writer.add_orders(orders)
    for plan in orders:
        await writer.order(plan)
    for customer in browsers:
        await writer.open_journey(customer, browse_start[customer.external_id])
    await session.flush()
    counts = writer.counts
    extra = demo_crowd.CrowdSummary()
    if crowd:
        extra = await demo_crowd.write_crowd(session, planner, rng, now, crowd, TEXTS)
    # Escalations handled by the demo agents, and applied insights (bot/demo_support.py).
    await demo_support.write_support(session, rng, now)
    return DemoSummary(
        customers=counts.customers + extra.customers,
        orders=counts.orders + extra.orders,
        subscriptions=counts.subscriptions,
        lifecycles=len(counts.lifecycle_ids) + extra.lifecycles,
        feedback=counts.feedback + extra.feedback,
        dispatches=counts.dispatches + extra.dispatches,
        created=True,
    )
