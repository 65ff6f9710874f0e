"""Item-level returns, damage and wrong-item reports (issue #19).

A return is put together in a `ReturnDraft`: which items (asked only when the order has
several and the customer named none), then one yes/no that still holds the open choice in
its buttons — the reason (tapping one confirms), or for damaged and wrong items refund or
replacement. The customer's own words fill in whatever they say ("just the towel, it came
chipped" names the item and the reason), and a plain yes always works (a refund; reason
"other" when none was given). The draft travels in the `return_draft` slot as JSON between
turns; nothing is written before the yes. The rules (docs/decisions.md, "Item-level returns"):

* Items: lines of the order with units not yet in an earlier return. Named items are
  matched by the words of their names; words after "keep"/"except"/"not the" exclude an
  item ("just the towel, i'm keeping the casserole"). One remaining line is picked without
  asking. A number before the name ("2 towels", "one mug") sets the quantity; more than is
  left to return is refused with the count.
* Reasons: damaged, wrong item, doesn't fit, changed mind, other; one reason for the items
  of one return (a customer with two reasons makes two returns), stored per item. An item
  missing from a delivered parcel ("box came but the towel was missing") is a report of its
  own (reason `missing`, flow `missing_item`): sent again or refunded, nothing sent back.
* Resolution: refund or replacement for damaged and wrong items; for an item that doesn't
  fit, refund or an exchange for another size (a replacement with `exchange_size`: "swap it
  for a L", "size M", "a medium"; "a bigger one" asks which size, once, with buttons; one
  size per return); refund only for changed mind and other.
* The refund is the chosen units' price; a replacement refunds nothing.
"""

from __future__ import annotations

import enum
import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import texts
from bot.storage.models import Order, OrderItem, ReturnLine, ReturnRequest, WebhookOutbox, utcnow

RETURN_EVENT = "return.requested"
# Button payloads: /inform{"return_pick": "<kind>:<value>"} (data/rules/support.yml).
PICK_ENTITY = "return_pick"


class Reason(str, enum.Enum):
    damaged = "damaged"
    wrong_item = "wrong_item"
    doesnt_fit = "doesnt_fit"
    changed_mind = "changed_mind"
    other = "other"
    # An item missing from a delivered parcel: sent again or refunded, nothing sent back.
    missing = "missing"


class Resolution(str, enum.Enum):
    refund = "refund"
    replacement = "replacement"


REPLACEABLE = frozenset({Reason.damaged, Reason.wrong_item, Reason.doesnt_fit, Reason.missing})
# Each reason's label on its button and in the confirmation (responses in domain.yml).
REASON_LABELS = {
    Reason.damaged: "utter_return_reason_damaged",
    Reason.wrong_item: "utter_return_reason_wrong_item",
    Reason.doesnt_fit: "utter_return_reason_doesnt_fit",
    Reason.changed_mind: "utter_return_reason_changed_mind",
    Reason.other: "utter_return_reason_other",
    Reason.missing: "utter_return_reason_missing",
}
# The reasons offered as buttons for a return (a missing item is not returned).
RETURN_REASONS = (
    Reason.damaged,
    Reason.wrong_item,
    Reason.doesnt_fit,
    Reason.changed_mind,
    Reason.other,
)
MISSING_FLOW = "missing_item"
# The sizes offered when a customer wants another size and named none.
SIZES = ("XS", "S", "M", "L", "XL", "XXL")

# Words that say why, in the customer's own terms; checked in this order (a "wrong size"
# doesn't fit, it is not a wrong item).
_REASON_WORDS: tuple[tuple[Reason, re.Pattern[str]], ...] = (
    (
        Reason.doesnt_fit,
        re.compile(
            r"\b(too (small|big|large|tight|loose|long|short)|doesn'?t fit|does not fit|"
            r"dont fit|don'?t fit|wrong size|fit|fits|sizing)\b"
        ),
    ),
    (
        Reason.damaged,
        re.compile(
            r"\b(broken|broke|cracked|crack|chipped|chip|damaged|damage|smashed|shattered|dented|"
            r"torn|ripped|scratched|scratch|leaking|leaks|leak|faulty|defective|defect|stained|"
            r"stain|stains|bent|blunt|dull|rust|rusty|rusted|peeling|peeled|wobbly|wobbles|loose|"
            r"warped|frayed|holes?|mou?ldy?|fell apart|falls apart|falling apart|came apart|"
            r"missing (?:a )?(?:part|parts|piece|pieces|lid|screw|screws)|"
            r"(?:doesn'?t|does not|dont|won'?t|will not|didn'?t) (?:work|cut|close|heat|boil|"
            r"turn on|switch on|stay|hold|seal)|not (?:working|heating)|stopped working)\b"
        ),
    ),
    # an item not in the parcel (a part missing from an item is damage, above)
    (
        Reason.missing,
        re.compile(
            r"\b(missing|(?:was|were)(?:n'?t| not) (?:in (?:the|my|it)|there)|"
            r"not in (?:the|my) (?:box|parcel|package)|left out|came without|arrived without|"
            r"forgot (?:the|to (?:send|include|pack)))\b"
        ),
    ),
    (
        Reason.wrong_item,
        re.compile(
            r"\b(wrong|not what i ordered|didn'?t order|incorrect|different (one|colou?r|item|"
            r"product)|sent me the|mixed up)\b"
        ),
    ),
    (
        Reason.changed_mind,
        re.compile(
            r"\b(changed? my mind|don'?t (want|need|like|love)|do not (want|need|like)|"
            r"no longer|not needed|not for me|dont like|dislike|unwanted)\b"
        ),
    ),
)
_REPLACEMENT = re.compile(
    r"\b(replace|replacement|replaced|new ones?|another one|exchange|exchanged|swap|switch it|"
    r"re-?send|send (me )?(a |another |the )?(new|right|correct))\b"
)
# For a missing item: "just send the towel pls", "send it again".
_SEND = re.compile(r"\b(re-?send|send|post|ship)\b")
_REFUND = re.compile(r"\b(refund|refunded|money back|reimburse|my money|pay me back)\b")
_ALL = re.compile(
    r"\b(all|everything|both|whole order|entire order|all of (them|it)|the lot|every item)\b"
)
_EXCLUDING = re.compile(r"\b(keep|keeping|kept|except|apart from|other than|but not|not the)\b")
_FINE = re.compile(
    r"\b((?:[a-z]+ ){0,2}[a-z]+)\s+(?:is|are|was|were)\s+(?:fine|ok|okay|good|perfect|alright|"
    r"all right|great|intact|undamaged)\b"
)
_NUMBER_WORDS = {
    "one": 1,
    "a": 1,
    "an": 1,
    "single": 1,
    "two": 2,
    "both": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
}
# Words of product names that say nothing about which product a customer means (also
# bot/domain/chat.py's order choice); a return's own words are no product either.
PRODUCT_NAME_FILLER = frozenset(
    [
        "and",
        "the",
        "for",
        "with",
        "set",
        "fit",
        "over",
        "down",
        "house",
        "large",
        "small",
        "whole",
        "straight",
        "field",
        "button",
        "crew",
        "cover",
        "organic",
        "blend",
    ]
)
_GENERIC = PRODUCT_NAME_FILLER | frozenset(
    ["one", "two", "item", "items", "just", "only", "return", "back", "order"]
)


@dataclass
class ReturnDraft:
    """A return being put together, before the customer's yes."""

    order: str
    flow: str
    lines: dict[int, int] = field(default_factory=dict)  # order item id → units
    reason: str | None = None
    resolution: str | None = None
    step: str | None = None  # the question asked last: items, or confirm (the yes/no)
    size: str | None = None  # the size wanted in an exchange
    size_from: str | None = None  # the size the customer has, if they said it

    def to_slot(self) -> str:
        return json.dumps({**asdict(self), "lines": {str(k): v for k, v in self.lines.items()}})

    @classmethod
    def from_slot(cls, value: Any) -> ReturnDraft | None:
        if not value:
            return None
        try:
            data = json.loads(str(value))
            return cls(
                order=str(data["order"]),
                flow=str(data.get("flow") or "return_item"),
                lines={int(k): int(v) for k, v in (data.get("lines") or {}).items()},
                reason=data.get("reason"),
                resolution=data.get("resolution"),
                step=data.get("step"),
                size=data.get("size"),
                size_from=data.get("size_from"),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Question:
    """What to ask next: the text, its buttons, and the step it answers."""

    text: str
    buttons: list[dict[str, str]]
    step: str


# --- reading the customer's words ----------------------------------------------------------


def _word(raw: str) -> str:
    return raw[:-1] if len(raw) > 3 and raw.endswith("s") and not raw.endswith("ss") else raw


def product_words(text: str, ignore: frozenset[str] = _GENERIC) -> set[str]:
    """Words that may name a product ("the towels" → {"towel"}): three letters or more, a
    plural "s" dropped, less those in `ignore` (words of product names that name nothing).
    Also bot/domain/chat.py's, for which order a request is about."""
    return {_word(w) for w in re.findall(r"[a-z]{3,}", text.lower())} - ignore


def reason_in(text: str, flow: str | None = None) -> Reason | None:
    """The reason the words give; a damage report is damage unless they say otherwise, a
    report of a missing item a missing item; another size wanted ("for size M") doesn't fit."""
    lowered = (text or "").lower()
    for reason, pattern in _REASON_WORDS:
        if pattern.search(lowered):
            return reason
    if size_wish(text).other:
        return Reason.doesnt_fit
    if flow == MISSING_FLOW:
        return Reason.missing
    return Reason.damaged if flow == "damaged_item" else None


def resolution_in(text: str) -> Resolution | None:
    lowered = (text or "").lower()
    if _REPLACEMENT.search(lowered):
        return Resolution.replacement
    if _REFUND.search(lowered):
        return Resolution.refund
    if size_wish(text).other:
        return Resolution.replacement  # "can i get it in M?": an exchange
    return None


# --- sizes ("swap it for a L", "size M", "a medium", "one size up") ---------------------------

_SIZE_CODES = {
    "xxs": "XXS",
    "xs": "XS",
    "s": "S",
    "m": "M",
    "l": "L",
    "xl": "XL",
    "xxl": "XXL",
    "2xl": "XXL",
    "xxxl": "XXXL",
    "3xl": "XXXL",
}
_SIZE_NAMES = {
    "extra small": "XS",
    "x-small": "XS",
    "small": "S",
    "medium": "M",
    "extra large": "XL",
    "x-large": "XL",
    "xx-large": "XXL",
    "large": "L",
}
_SIZE = re.compile(
    r"(?<![\w'’-])(?:(?P<code>xxxl|3xl|xxl|2xl|xl|xxs|xs|s|m|l)|"
    r"(?P<name>extra small|x-small|extra large|xx-large|x-large|small|medium|large)|"
    r"size\s+(?P<number>\d{1,2}(?:[/.]\d{1,2})?))(?![\w'’-])",
    re.IGNORECASE,
)
# A single letter is a size only when written as one: upper case, or after these words
# ("for a l", "size m") or before these ("l please").
_SIZE_BEFORE = re.compile(
    r"\b(size|sizes|a|an|in|for|to|into|the|my|of|not|from|than|instead|ordered|bought|got)\s*$"
)
_SIZE_AFTER = re.compile(r"^\s*(please|pls|plz|instead|size|one|not|rather|thanks|thx|\?|!|$)")
# Words before a size that say it describes the fit, not the size wanted ("too small").
_FIT_BEFORE = re.compile(
    r"\b(too|so|very|bit|is|are|was|were|quite|really|rather|little|way|it'?s|its|abit)\s*$"
)
# Words before a size that say it is the one the customer has ("L instead of M", "my M").
_CURRENT_BEFORE = re.compile(
    r"\b(instead of|not|from|rather than|than|my|ordered(?: an?)?|bought(?: an?)?|"
    r"got(?: an?)?|have(?: an?)?)\s*$"
)
_OTHER_SIZE = re.compile(
    r"\b(bigger|larger|smaller|(?:a|one) size (?:up|down|bigger|smaller|larger)|size (?:up|down)|"
    r"next size|another size|different size|other size|new size|right size)\b"
)


@dataclass(frozen=True)
class SizeWish:
    """The size the words ask for (`wanted`, None when they name none: "a bigger one"), the
    one the customer has if they say it (`current`: "L instead of M"), and `other`: whether
    they ask for another size at all."""

    wanted: str | None = None
    current: str | None = None
    other: bool = False


def size_wish(text: str) -> SizeWish:
    """Another size asked for in `text` ("swap it for a L", "size M", "a medium please",
    "L not M", "one size up"); `too small` says why, it asks for no size."""
    raw = text or ""
    wanted: str | None = None
    current: str | None = None
    for match in _SIZE.finditer(raw):
        before = raw[: match.start()].lower()
        code, name, number = match.group("code"), match.group("name"), match.group("number")
        if code:
            written = match.group("code")
            single = len(written) == 1
            if single and not (
                written.isupper()
                or _SIZE_BEFORE.search(before)
                or _SIZE_AFTER.search(raw[match.end() :].lower())
            ):
                continue
            size = _SIZE_CODES[code.lower()]
        elif name:
            if _FIT_BEFORE.search(before):
                continue  # "too small", "it's large": why it doesn't fit
            size = _SIZE_NAMES[name.lower()]
        else:
            size = number
        if _CURRENT_BEFORE.search(before):
            current = current or size
        elif wanted is None:
            wanted = size
    other = wanted is not None or bool(_OTHER_SIZE.search(raw.lower()))
    return SizeWish(wanted, current if current != wanted else None, other)


def _quantity_before(text: str, name_word: str) -> int | None:
    """The number written just before a product word: "2 towels", "one of the mugs"."""
    match = re.search(
        rf"\b(\d+|{'|'.join(_NUMBER_WORDS)})\s+(?:x\s+|of\s+(?:the|my)\s+|\w+\s+)?{name_word}",
        text.lower(),
    )
    if not match:
        return None
    raw = match.group(1)
    return int(raw) if raw.isdigit() else _NUMBER_WORDS.get(raw)


@dataclass(frozen=True)
class ItemPick:
    """The items the words name, units per order item; `too_many` names an item asked for in
    more units than are left to return."""

    lines: dict[int, int]
    too_many: tuple[OrderItem, int, int] | None = None  # item, asked, left
    # items of the order the words name that are already in a return, none left to return
    gone: tuple[OrderItem, ...] = ()


def items_in(text: str, returnable: dict[int, int], items: list[OrderItem]) -> ItemPick:
    """Which of the returnable items the text names (none when it names none)."""
    lowered = (text or "").lower()
    # "casserole came cracked, towel is fine": the towel stays (tester 2)
    kept_part = " ".join(m.group(1) for m in _FINE.finditer(lowered))
    lowered = _FINE.sub(" ", lowered)
    cut = _EXCLUDING.search(lowered)
    if cut:
        lowered, kept_part = lowered[: cut.start()], f"{kept_part} {lowered[cut.start() :]}"
    kept = product_words(kept_part)
    by_id = {item.id: item for item in items if returnable.get(item.id, 0) > 0}
    said = product_words(lowered)
    raw = set(re.findall(r"[a-z]{3,}", lowered))
    picked: dict[int, int] = {}
    for item in by_id.values():
        name_words = product_words(item.name)
        if not name_words & said:
            continue
        left = returnable[item.id]
        asked = None
        for word in name_words & said:
            asked = asked or _quantity_before(lowered, word)
        if asked is not None and asked > left:
            return ItemPick({}, too_many=(item, asked, left))
        if asked is None and left > 1 and not _ALL.search(lowered):
            # "the mug came cracked" of three mugs: one; "the mugs": all of them (tester)
            plural = any(f"{w}s" in raw or f"{w}es" in raw for w in name_words & said)
            asked = None if plural else 1
        picked[item.id] = asked or left
    gone = tuple(
        item
        for item in items
        if returnable.get(item.id, 0) == 0 and product_words(item.name) & said
    )
    if not picked and gone:
        return ItemPick({}, gone=gone)
    if not picked and _ALL.search(lowered) and not kept:
        return ItemPick(dict(returnable))
    if not picked and kept:
        # "i'm keeping the casserole" alone: everything else
        rest = {
            i: n
            for i, n in returnable.items()
            if i in by_id and not product_words(by_id[i].name) & kept
        }
        if rest and len(rest) < len([i for i in returnable if returnable[i] > 0]):
            return ItemPick(rest)
    return ItemPick(picked)


# --- a parcel or an item not received ---------------------------------------------------------

# Words that say a parcel (or an item) never reached the customer.
_NOT = r"(?:didn'?t|did not|dint|haven'?t|havent|have not|hasn'?t|has not|never)"
_NOT_RECEIVED = re.compile(
    rf"\b({_NOT} (?:arrive|arrived|come|came|turn(?:ed)? up|reach(?:ed)? me|show(?:ed)? up)|"
    rf"{_NOT} (?:get|got|receive|received) (?:it|them|anything|(?:the|my) (?:parcel|package|"
    r"order|box|delivery))|nothing (?:here|arrived|came|there)|no parcel|"
    r"(?:parcel|package|order|box|it) (?:has |is |was )?not (?:arrived|received|delivered|there)|"
    r"(?:wasn'?t|was not|not been) delivered|(?:got|was|is|been|went) lost|"
    r"lost in (?:the post|transit)|"
    rf"{_NOT} (?:got|received)(?=\s*[?!.]|\s*$))"
)
# "never got the towel" (an item of a parcel that came)
_NOT_GOT = re.compile(rf"\b{_NOT} (?:get|got|receive|received)\b")
# "box came but the towel was missing": the parcel came (something in it did not).
_PARCEL_CAME = re.compile(
    r"\b((?:box|parcel|package|order) (?:came|arrived|was delivered)|(?:in|from|out of) "
    r"(?:the|my) (?:box|parcel|package)|came without|arrived without|only (?:got|received))\b"
)


def not_received(text: str) -> bool:
    """Whether the words say something never reached the customer ("theres nothing here")."""
    return bool(_NOT_RECEIVED.search((text or "").lower()))


def missing_from_parcel(text: str, order: Order) -> bool:
    """Whether the words report an item missing from a delivered parcel of several units
    ("box came but the towel was missing from it", "never got the mugs, the rest came"): the
    item is sent again or refunded, nothing is traced or sent back. A one-item order that
    did not come is a lost parcel (the delivery flow's trace), not a missing item."""
    if sum(item.quantity for item in order.items) < 2:
        return False
    lowered = (text or "").lower()
    named = bool(
        product_words(lowered) & set().union(*(product_words(i.name) for i in order.items))
    )
    if reason_in(lowered) is Reason.missing:
        return named or bool(_PARCEL_CAME.search(lowered))
    return (
        named
        and (not_received(lowered) or bool(_NOT_GOT.search(lowered)))
        and reason_in(lowered) is None
    )


# --- what is left to return ------------------------------------------------------------------


async def returned_units(session: AsyncSession, order: Order) -> dict[int, int]:
    """Units of each order item already in a return."""
    rows = await session.execute(
        select(ReturnLine.order_item_id, func.sum(ReturnLine.quantity))
        .join(ReturnRequest, ReturnRequest.id == ReturnLine.return_id)
        .where(ReturnRequest.order_id == order.id)
        .group_by(ReturnLine.order_item_id)
    )
    return {int(item_id): int(units or 0) for item_id, units in rows.all()}


def returnable_units(order: Order, returned: dict[int, int]) -> dict[int, int]:
    """Units of each item that can still be returned (items with none left are omitted)."""
    left = {item.id: item.quantity - returned.get(item.id, 0) for item in order.items}
    return {item_id: units for item_id, units in left.items() if units > 0}


# --- the questions -----------------------------------------------------------------------------


def _pick(kind: str, value: str) -> str:
    return f'/inform{{"{PICK_ENTITY}":"{kind}:{value}"}}'


def describe(lines: dict[int, int], items: list[OrderItem]) -> str:
    by_id = {item.id: item for item in items}
    return ", ".join(f"{units}× {by_id[i].name}" for i, units in lines.items() if i in by_id)


def refund_amount(lines: dict[int, int], items: list[OrderItem]) -> Decimal:
    by_id = {item.id: item for item in items}
    return sum(
        (by_id[i].unit_price * units for i, units in lines.items() if i in by_id), Decimal(0)
    )


def items_question(order: Order, returnable: dict[int, int], missing: bool = False) -> Question:
    buttons = [
        {
            "title": f"{units}× {item.name}" if units > 1 else item.name,
            "payload": _pick("item", str(item.id)),
        }
        for item in order.items
        if (units := returnable.get(item.id, 0)) > 0
    ]
    if missing:
        return Question(
            texts.render("utter_missing_which_items", order=order.number), buttons, "items"
        )
    buttons.append(
        {"title": texts.render("utter_return_all_items_button"), "payload": _pick("item", "all")}
    )
    return Question(texts.render("utter_return_which_items", order=order.number), buttons, "items")


def _yes_pick(kind: str, value: str) -> str:
    """A button that confirms the return with a choice in it (data/rules/support.yml's yes)."""
    return f'/affirm{{"{PICK_ENTITY}":"{kind}:{value}"}}'


def confirmation(draft: ReturnDraft, order: Order) -> Question:
    """The yes/no for the return, with the choice still open in its buttons: the reason
    (tapping one confirms; a plain yes confirms without one), or for damaged and wrong items
    refund or replacement (a plain yes means the refund), for an item that doesn't fit refund
    or an exchange, and then which size; a missing item is sent again or refunded. One turn,
    however it is answered (an exchange without a size: one more, for the size)."""
    items = describe(draft.lines, order.items)
    amount = f"{refund_amount(draft.lines, order.items):.2f} {order.currency}"
    no = {"title": texts.render("utter_return_no_button"), "payload": "no"}
    if draft.reason == Reason.missing.value:
        return _missing_confirmation(draft, order, items, amount)
    if draft.reason == Reason.doesnt_fit.value and draft.resolution != Resolution.refund.value:
        return _exchange_confirmation(draft, order, items, amount, no)
    if draft.reason is None:
        buttons = [
            {"title": texts.render(REASON_LABELS[r]), "payload": _yes_pick("reason", r.value)}
            for r in RETURN_REASONS
        ]
        text = texts.render(
            "utter_return_confirm_pick_reason", order=order.number, items=items, amount=amount
        )
        return Question(text, [*buttons, no], "confirm")
    reason = Reason(draft.reason)
    label = texts.render(REASON_LABELS[reason]).lower()
    if reason in REPLACEABLE and draft.resolution is None:
        buttons = [
            {
                "title": texts.render("utter_return_refund_button", amount=amount),
                "payload": _yes_pick("resolution", Resolution.refund.value),
            },
            {
                "title": texts.render("utter_return_replacement_button"),
                "payload": _yes_pick("resolution", Resolution.replacement.value),
            },
        ]
        text = texts.render(
            "utter_return_confirm_pick_resolution",
            order=order.number,
            items=items,
            reason=label,
            amount=amount,
        )
        return Question(text, [*buttons, no], "confirm")
    yes_no = [{"title": "Yes", "payload": "yes"}, {"title": "No", "payload": "no"}]
    if draft.resolution == Resolution.replacement.value:
        text = texts.render(
            "utter_return_confirm_replacement", order=order.number, items=items, reason=label
        )
    else:
        text = texts.render(
            "utter_return_confirm_items",
            order=order.number,
            items=items,
            reason=label,
            amount=amount,
        )
    return Question(text, yes_no, "confirm")


def _exchange_confirmation(
    draft: ReturnDraft, order: Order, items: str, amount: str, no: dict[str, str]
) -> Question:
    """An item that doesn't fit: exchange for another size or refund (a plain yes: the
    refund); the exchange asked, which size (a button per size, tapping one confirms);
    the size known, the exchange for it."""
    if draft.resolution is None:
        buttons = [
            {
                "title": texts.render("utter_exchange_button"),
                "payload": _yes_pick("resolution", Resolution.replacement.value),
            },
            {
                "title": texts.render("utter_return_refund_button", amount=amount),
                "payload": _yes_pick("resolution", Resolution.refund.value),
            },
        ]
        text = texts.render(
            "utter_exchange_confirm_pick", order=order.number, items=items, amount=amount
        )
        return Question(text, [*buttons, no], "confirm")
    if draft.size_from and len(draft.lines) == 1:
        items = texts.render("utter_exchange_item_size", items=items, size=draft.size_from)
    if draft.size is None:
        buttons = [{"title": size, "payload": _yes_pick("size", size)} for size in SIZES]
        text = texts.render("utter_exchange_ask_size", order=order.number, items=items)
        return Question(text, [*buttons, no], "confirm")
    yes_no = [{"title": "Yes", "payload": "yes"}, {"title": "No", "payload": "no"}]
    text = texts.render("utter_exchange_confirm", order=order.number, items=items, size=draft.size)
    return Question(text, yes_no, "confirm")


def _missing_confirmation(draft: ReturnDraft, order: Order, items: str, amount: str) -> Question:
    """An item missing from the parcel: sent again (a plain yes) or refunded, nothing sent
    back."""
    no = {"title": texts.render("utter_missing_no_button"), "payload": "no"}
    if draft.resolution is None:
        buttons = [
            {
                "title": texts.render("utter_missing_send_button"),
                "payload": _yes_pick("resolution", Resolution.replacement.value),
            },
            {
                "title": texts.render("utter_return_refund_button", amount=amount),
                "payload": _yes_pick("resolution", Resolution.refund.value),
            },
        ]
        text = texts.render(
            "utter_missing_confirm_pick", order=order.number, items=items, amount=amount
        )
        return Question(text, [*buttons, no], "confirm")
    name = (
        "utter_missing_confirm_resend"
        if draft.resolution == Resolution.replacement.value
        else "utter_missing_confirm_refund"
    )
    text = texts.render(name, order=order.number, items=items, amount=amount)
    return Question(text, [{"title": "Yes", "payload": "yes"}, no], "confirm")


def settle_at_yes(draft: ReturnDraft, pick: str | None, text: str) -> bool:
    """Fill the return from the yes (a button's reason, refund/replacement or size, or words
    such as "yes, a replacement please", "yes L please"); False when the reason just tapped
    allows a replacement, which is then asked (the one extra turn), or an exchange has no
    size yet (asked), True when the return can be stored."""
    if pick:
        apply_pick(draft, pick, {})
    _read_size(draft, text)
    resolution = resolution_in(text)
    if resolution is not None:
        draft.resolution = resolution.value
    if draft.reason is None:
        said = reason_in(text, draft.flow)
        draft.reason = (said or Reason.other).value
    reason = Reason(draft.reason)
    if reason is Reason.missing:
        draft.resolution = draft.resolution or Resolution.replacement.value  # "send it again?"
        return True
    replaceable = reason in REPLACEABLE
    if replaceable and draft.resolution is None and pick and pick.startswith("reason:"):
        return False
    if (
        reason is Reason.doesnt_fit
        and draft.resolution == Resolution.replacement.value
        and draft.size is None
    ):
        return False  # an exchange: which size?
    if draft.resolution is None or not replaceable:
        draft.resolution = Resolution.refund.value
    return True


def _read_size(draft: ReturnDraft, text: str) -> None:
    """The size wanted, from the words: an exchange for an item that doesn't fit (a size
    named for another reason makes it one: "can i exchange the shirt for size M")."""
    wish = size_wish(text)
    if not wish.other:
        return
    if draft.reason in (Reason.damaged.value, Reason.wrong_item.value, Reason.missing.value):
        return  # a damaged, wrong or missing item named with a size: not an exchange
    draft.reason = Reason.doesnt_fit.value
    draft.resolution = Resolution.replacement.value
    draft.size = wish.wanted or draft.size
    draft.size_from = wish.current or draft.size_from


def apply_pick(draft: ReturnDraft, pick: str, returnable: dict[int, int]) -> None:
    """A button's choice ("item:12", "item:all", "reason:damaged", "resolution:refund")."""
    kind, _, value = pick.partition(":")
    if kind == "item":
        if value == "all":
            draft.lines = dict(returnable)
        elif value.isdigit() and int(value) in returnable:
            draft.lines = {int(value): returnable[int(value)]}
    elif kind == "reason" and value in Reason._value2member_map_:
        draft.reason = value
    elif kind == "resolution" and value in Resolution._value2member_map_:
        draft.resolution = value
    elif kind == "size" and value and len(value) <= 16:
        draft.reason = Reason.doesnt_fit.value
        draft.resolution = Resolution.replacement.value
        draft.size = value


def read_answer(
    draft: ReturnDraft, text: str, order: Order, returnable: dict[int, int]
) -> str | None:
    """Fill the draft from typed words; returns a refusal to say (too many units), if any.
    Whatever the words say is taken, whichever question was asked ("the towel, it's
    cracked" answers the items and the reason at once)."""
    pick = items_in(text, returnable, order.items)
    if pick.too_many is not None:
        item, asked, left = pick.too_many
        return texts.render("utter_return_too_many", item=item.name, asked=asked, left=left)
    if pick.gone:
        names = ", ".join(item.name for item in pick.gone)
        return texts.render("utter_return_item_already", items=names, order=order.number)
    if pick.lines and draft.lines and _ADDING.search(text.lower()):
        draft.lines = {**draft.lines, **pick.lines}  # "actually the mugs too": both
    elif pick.lines:
        draft.lines = pick.lines
    split = _first_of_two_reasons(text, draft.lines, order.items) if pick.lines else None
    if split is not None:
        draft.lines, text = split
    reason = reason_in(text, draft.flow)
    if reason is not None and (draft.reason is None or reason_in(text)):
        draft.reason = reason.value
    resolution = resolution_in(text)
    if draft.reason == Reason.missing.value and resolution is None and _SEND.search(text.lower()):
        resolution = Resolution.replacement  # "just send the towel pls"
    if resolution is not None:
        draft.resolution = resolution.value
    _read_size(draft, text)
    return None


_CLAUSE = re.compile(r"\b(?:and|but|also|plus|while)\b|[,;.!?]")


def _first_of_two_reasons(
    text: str, lines: dict[int, int], items: list[OrderItem]
) -> tuple[dict[int, int], str] | None:
    """ "the mug arrived chipped and the jumper is too big": items with a reason each. One
    reason per return: this one is the first reason's items, read from its own words (the
    jumper can be returned next); None when the words give one reason (or none)."""
    if len(lines) < 2:
        return None
    by_id = {item.id: item for item in items if item.id in lines}
    found: list[tuple[Reason, set[int], str]] = []
    for clause in _CLAUSE.split(text or ""):
        reason = reason_in(clause)
        said = product_words(clause)
        named = {i for i, item in by_id.items() if product_words(item.name) & said}
        if reason is not None and named:
            found.append((reason, named, clause))
    if len({reason for reason, _, _ in found}) < 2:
        return None
    first = found[0][0]
    ids: set[int] = set().union(*(named for reason, named, _ in found if reason is first))
    words = " ".join(clause for reason, _, clause in found if reason is first)
    return {i: units for i, units in lines.items() if i in ids}, words


def answers_step(draft: ReturnDraft, text: str, order: Order, returnable: dict[int, int]) -> bool:
    """Whether typed words answer the question asked (so they continue the return instead of
    being read as a new request: "the towel" at "Which items?"), or change the return asked
    about ("just the towel", "it doesn't fit", "a replacement" at its yes/no)."""
    lowered = (text or "").lower()
    pick = items_in(text, returnable, order.items)
    if draft.step == "items":
        return bool(pick.lines) or pick.too_many is not None or bool(pick.gone)
    if draft.step == "confirm":
        return (
            bool(pick.lines)
            or pick.too_many is not None
            or reason_in(text) is not None
            or resolution_in(text) is not None
            or (draft.reason == Reason.missing.value and bool(_SEND.search(lowered)))
        )
    return False


# Words that add items to those already chosen rather than replace them.
_ADDING = re.compile(r"\b(too|also|as well|plus|and the|another)\b")
_REFINING = re.compile(r"\b(just|only|keep|keeping|except|instead|rather|actually)\b|\d")


def may_refine(text: str) -> bool:
    """Whether words at a return's yes/no might change it ("just the towel", "a replacement
    instead"), checked without the order; the return's next step reads them properly."""
    lowered = (text or "").lower()
    return bool(
        _REFINING.search(lowered) or reason_in(text) is not None or resolution_in(text) is not None
    )


_YES_OPENER = re.compile(r"^\s*(yes+|yep|yeah|yea|ya|yup|sure|ok|okay|please|pls|perfect)\b")
_NO_OPENER = re.compile(r"^\s*(no+|nah|nope|not|don'?t|never ?mind|nvm)\b")


def confirms(draft: ReturnDraft | None, text: str) -> bool:
    """Words that confirm the return asked about with a choice in them, as tapping that
    choice's button would: a yes naming a size or refund/replacement ("yes L please", "yes, a
    replacement") at its yes/no, or a size alone ("L please", "a medium") at "Which size
    would you like instead?" (tester: a typed answer was asked once more)."""
    if draft is None or draft.step != "confirm":
        return False
    lowered = (text or "").lower()
    if _NO_OPENER.match(lowered):
        return False
    wish = size_wish(text)
    if _YES_OPENER.match(lowered) and (wish.wanted or resolution_in(text) is not None):
        return True
    asks_size = (
        draft.reason == Reason.doesnt_fit.value
        and draft.resolution == Resolution.replacement.value
        and draft.size is None
    )
    return asks_size and wish.wanted is not None and len(lowered.split()) <= 6


def next_question(
    draft: ReturnDraft, order: Order, returnable: dict[int, int], ask: bool = False
) -> Question:
    """Which items, when several could be meant and none was named (or, with `ask`, the
    customer named one that cannot be returned); else the yes/no."""
    if not draft.lines:
        if len(returnable) == 1 and not ask:
            draft.lines = dict(returnable)
        else:
            return items_question(order, returnable, missing=draft.reason == Reason.missing.value)
    return confirmation(draft, order)


# --- carrying it out --------------------------------------------------------------------------


def new_reference() -> str:
    return "R-" + "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6))


async def create_return(
    session: AsyncSession, order: Order, draft: ReturnDraft, returnable: dict[int, int]
) -> ReturnRequest | str:
    """Store the confirmed return (one row per item) and queue the shop's webhook; a refusal
    text instead when the items are no longer returnable (returned meanwhile)."""
    if not draft.lines or any(units > returnable.get(i, 0) for i, units in draft.lines.items()):
        return texts.render("utter_return_items_gone", order=order.number)
    reason = Reason(draft.reason or Reason.other.value)
    resolution = Resolution(draft.resolution or Resolution.refund.value)
    if reason not in REPLACEABLE:
        resolution = Resolution.refund
    exchange_size = (
        draft.size if reason is Reason.doesnt_fit and resolution is Resolution.replacement else None
    )
    by_id = {item.id: item for item in order.items}
    now = utcnow()
    request = ReturnRequest(
        reference=new_reference(), order_id=order.id, customer_id=order.customer_id, created_at=now
    )
    for item_id, units in draft.lines.items():
        item = by_id[item_id]
        request.lines.append(
            ReturnLine(
                order_item_id=item_id,
                quantity=units,
                reason=reason.value,
                resolution=resolution.value,
                refund_amount=(
                    item.unit_price * units if resolution is Resolution.refund else Decimal(0)
                ),
                exchange_size=exchange_size,
            )
        )
    session.add(request)
    await session.flush()
    session.add(
        WebhookOutbox(
            event_type=RETURN_EVENT,
            payload=webhook_payload(request, order),
            created_at=now,
            next_attempt_at=now,
        )
    )
    return request


def webhook_payload(request: ReturnRequest, order: Order) -> dict[str, Any]:
    by_id = {item.id: item for item in order.items}
    return {
        "id": f"return-{request.reference}",
        "type": RETURN_EVENT,
        "occurred_at": request.created_at.isoformat(),
        "return": {
            "reference": request.reference,
            "order": order.number,
            "items": [
                {
                    "sku": by_id[line.order_item_id].sku,
                    "name": by_id[line.order_item_id].name,
                    "quantity": line.quantity,
                    "reason": line.reason,
                    "resolution": line.resolution,
                    "refund_amount": f"{line.refund_amount:.2f}",
                    "exchange_size": line.exchange_size,
                }
                for line in request.lines
            ],
            "refund_total": f"{request.refund_total:.2f}",
            "currency": order.currency,
        },
    }


def started_text(request: ReturnRequest, order: Order, email: str | None) -> str:
    """What the customer is told once the return is stored: the reference and what next."""
    items = describe({line.order_item_id: line.quantity for line in request.lines}, order.items)
    first = request.lines[0] if request.lines else None
    if first is not None and first.reason == Reason.missing.value:
        # nothing to send back: sent again, or refunded
        name = (
            "utter_confirmed_missing_resent"
            if request.refund_total == 0
            else "utter_confirmed_missing_refunded"
        )
        return texts.render(
            name,
            reference=request.reference,
            order=order.number,
            items=items,
            amount=f"{request.refund_total:.2f} {order.currency}",
        )
    if first is not None and first.exchange_size:
        return texts.render(
            "utter_confirmed_exchange_started",
            reference=request.reference,
            order=order.number,
            items=items,
            size=first.exchange_size,
            email=email or "",
        )
    if request.refund_total == 0:
        return texts.render(
            "utter_confirmed_replacement_started",
            reference=request.reference,
            order=order.number,
            items=items,
            email=email or "",
        )
    return texts.render(
        "utter_confirmed_items_return_started",
        reference=request.reference,
        order=order.number,
        items=items,
        email=email or "",
        amount=f"{request.refund_total:.2f} {order.currency}",
    )


async def panel(session: AsyncSession, customer_id: int) -> list[dict[str, Any]]:
    """The customer's returns for the console's customer panel, newest first: reference,
    order, when, and per item the units, reason, refund or replacement and amount."""
    requests = (
        await session.scalars(
            select(ReturnRequest)
            .where(ReturnRequest.customer_id == customer_id)
            .order_by(ReturnRequest.created_at.desc(), ReturnRequest.id.desc())
        )
    ).all()
    item_ids = {line.order_item_id for request in requests for line in request.lines}
    items = (
        {
            i.id: i
            for i in await session.scalars(select(OrderItem).where(OrderItem.id.in_(item_ids)))
        }
        if item_ids
        else {}
    )
    orders = (
        {
            o.id: o
            for o in await session.scalars(
                select(Order).where(Order.id.in_({r.order_id for r in requests}))
            )
        }
        if requests
        else {}
    )
    return [
        {
            "reference": request.reference,
            "order_number": orders[request.order_id].number,
            "created_at": request.created_at.isoformat(),
            "currency": orders[request.order_id].currency,
            "refund_total": f"{request.refund_total:.2f}",
            "items": [
                {
                    "name": items[line.order_item_id].name,
                    "sku": items[line.order_item_id].sku,
                    "quantity": line.quantity,
                    "reason": line.reason,
                    "resolution": line.resolution,
                    "refund_amount": f"{line.refund_amount:.2f}",
                    "exchange_size": line.exchange_size,
                }
                for line in request.lines
            ],
        }
        for request in requests
    ]
