"""A small product FAQ: answers to research-stage questions by keyword overlap."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.domain import texts


@dataclass(frozen=True)
class FaqEntry:
    topic: str
    keywords: frozenset[str]
    answer: str


FAQ: tuple[FaqEntry, ...] = (
    FaqEntry("sizes", frozenset({"size", "sizes", "sizing", "fit", "fits", "small", "large", "medium", "xl", "xs", "length", "measurements", "chart"}),
             "Our clothing runs true to size; each product page has a size chart in cm and inches. If you're between sizes, take the larger one. Exchanges for another size are free within 30 days."),
    FaqEntry("stock", frozenset({"stock", "available", "availability", "restock", "back", "sold", "out", "colour", "color", "colours", "colors", "blue", "black", "green", "red", "white"}),
             "Stock is shown live on each product page. If a size or colour is sold out, press 'Notify me' there and we'll email you as soon as it's back, usually within 2–3 weeks."),
    FaqEntry("warranty", frozenset({"warranty", "guarantee", "guaranteed", "years", "repair", "lifetime"}),
             "Kitchenware and home goods come with a 2-year warranty (cast iron: lifetime). Keep your order number; that's your proof of purchase."),
    FaqEntry("materials", frozenset({"material", "materials", "made", "cotton", "wool", "linen", "organic", "steel", "cast", "iron", "enamel", "ceramic", "bpa", "vegan", "sustainable"}),
             "Every product page lists materials and origin under 'Details'. Our textiles are organic cotton, linen or merino; cookware is enamelled cast iron, stainless steel or stoneware, all food-safe and BPA-free."),
    FaqEntry("care", frozenset({"wash", "washing", "dishwasher", "oven", "induction", "care", "clean", "cleaning", "iron", "dryer", "safe", "microwave"}),
             "Care instructions are on each product page. In short: stainless and stoneware are dishwasher safe; cast iron and wooden items are hand-wash only; all our pans work on induction and in the oven up to 250 °C."),
    FaqEntry("shipping", frozenset({"shipping", "deliver", "delivery", "ship", "countries", "international", "free", "cost", "costs", "express", "long"}),
             "We ship across the EU and to the UK. Delivery takes 2–4 working days (express: next day). Shipping is free from 50 EUR, otherwise 4.90 EUR."),
    FaqEntry("subscription", frozenset({"subscription", "subscribe", "coffee", "box", "beans", "roast", "grind", "ground", "plan", "monthly"}),
             "The Coffee Explorer Box brings 2 × 250 g of freshly roasted beans (or ground to order) each month from 19 EUR. You can pause, skip or cancel any time here in the chat."),
    FaqEntry("gift", frozenset({"gift", "present", "wrap", "wrapping", "card", "voucher", "vouchers"}),
             "Gift wrapping is 3 EUR and you can add a handwritten card at checkout. Gift vouchers from 20 EUR are sent by email instantly."),
)  # fmt: skip

_WORDS = re.compile(r"[a-z]+")


def fallback_answer() -> str:
    """A friendly pointer for a question the FAQ does not answer."""
    return texts.render("utter_product_no_answer")


def answer(question: str) -> tuple[str, str | None]:
    """The best FAQ answer and its topic; a friendly pointer when nothing matches."""
    words = set(_WORDS.findall((question or "").lower()))
    best, best_hits = None, 0
    for entry in FAQ:
        hits = len(words & entry.keywords)
        if hits > best_hits:
            best, best_hits = entry, hits
    if best is None:
        return fallback_answer(), None
    return best.answer, best.topic
