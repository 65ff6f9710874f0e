"""The demo shop's fixed data: products, plans, carriers, names and addresses, the texts of
the feedback, and the odds that shape the findings the dashboard shows (see the package's
docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from bot.domain.enums import AcquisitionSource

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
    "Anna",
    "Lukas",
    "Sophie",
    "Jonas",
    "Emma",
    "Finn",
    "Mia",
    "Noah",
    "Lena",
    "Elias",
    "Sara",
    "Daan",
    "Fleur",
    "Bram",
    "Lotte",
    "Sem",
    "Julia",
    "Luca",
    "Chloé",
    "Louis",
    "Camille",
    "Hugo",
    "Marta",
    "Pablo",
    "Giulia",
    "Matteo",
    "Aisha",
    "Omar",
    "Mei",
    "Kenji",
    "Olivia",
    "Liam",
    "Hannah",
    "Ben",
    "Clara",
    "Felix",
    "Inês",
    "Tiago",
    "Nora",
    "Emil",
    "Freya",
    "Oskar",
    "Zofia",
    "Jakub",
    "Elif",
    "Can",
    "Amara",
    "Kwame",
    "Sanne",
    "Ruben",
)
LAST_NAMES = (
    "Müller",
    "Schmidt",
    "Fischer",
    "Weber",
    "Wagner",
    "de Vries",
    "Jansen",
    "van Dijk",
    "Bakker",
    "Visser",
    "Peeters",
    "Janssens",
    "Dubois",
    "Laurent",
    "Martin",
    "García",
    "Rossi",
    "Bianchi",
    "Novak",
    "Kowalski",
    "Yılmaz",
    "Haddad",
    "Chen",
    "Tanaka",
    "O'Brien",
    "Murphy",
    "Nielsen",
    "Larsen",
    "Andersson",
    "Costa",
    "Silva",
    "Hoffmann",
    "Koch",
    "Meijer",
    "Hendriks",
    "Bauer",
    "Wolf",
    "Schäfer",
    "Lehmann",
    "Okafor",
)
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
    "Germany": (
        "Kastanienallee",
        "Bergmannstraße",
        "Schillerstraße",
        "Goethestraße",
        "Lindenstraße",
        "Friedrichstraße",
        "Eichendorffstraße",
        "Am Wasserturm",
    ),
    "Netherlands": (
        "Keizersgracht",
        "Prinsengracht",
        "Oudegracht",
        "Kerkstraat",
        "Vondelstraat",
        "Witte de Withstraat",
        "Zeestraat",
    ),
    "Belgium": ("Kouter", "Meir", "Bondgenotenlaan", "Rue de la Loi", "Veldstraat"),
    "Austria": ("Mariahilfer Straße", "Neubaugasse", "Herrengasse", "Landstraßer Hauptstraße"),
}
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
