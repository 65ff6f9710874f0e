"""A reviewed conversation as a regression conversation (issue #24): the review inbox's
"Save as regression conversation" button.

The console answers with a file to download, `reviewed-rv<message id>.yml`, in the format
of tests/conversations/*.yml (bench/conversations/README.md), a complete file the
conversation runner loads as it is. A trainer saves it into `tests/conversations/`
(`make test` and `python -m bench.conversations --files tests/conversations/*.yml` then
run it) or moves the conversation into the file of its area; the web service never writes
into the repository (in production it has no checkout).

* **Turns**: every customer message up to and including the flagged one, as `say:`; a
  quick-reply click is saved as the text it sent. The bot's replies of that day are
  comments under each turn, for the trainer writing the expectations.
* **Expectation**: on the flagged turn (unless the reviewer dismissed it as "not a real
  request") the bot must not say it did not understand (`none: ['$NOT_UNDERSTOOD']`).
* **`known_bug:`** — the bot got this turn wrong when it happened: the runner expects the
  conversation to fail (pytest xfail, not strict) until the bot gets it right; an XPASS
  says the key can go.
* **Personal data** is replaced as `python -m bot export-reviewed` does it
  (bot/domain/review_export.py's `Anonymiser`: emails, order numbers, other long numbers,
  names), except what the runner can make up fresh every run: the conversation's
  customer (`customers: {c: …}` with a placeholder name, `{c.email}`, `{c.name}`) and
  their orders named in the chat (`{o1}`, `{o2}`, … with `order.placed` / `order.shipped`
  / `order.delivered` setup events dated as they were, relative to the flagged turn).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from bot.domain.enums import MessageSender, ReviewStatus
from bot.domain.errors import NotFound
from bot.domain.review_export import (
    ERASED_TEXT,
    LAST_NAMES,
    Anonymiser,
    fake_name,
    name_tokens,
    vocabulary,
)
from bot.storage.models import Conversation, Customer, Message, Order, TurnFlag, TurnUnderstanding

NOT_UNDERSTOOD = "not sure I understood|didn't get that|Did you mean"
# The items the conversation runner's catalogue knows (bench/conversations/runner.py).
RUNNER_ITEMS = ("casserole", "towel", "jumper", "mug", "shirt", "kettle", "knife")
DEFAULT_ITEM = "mug"
BOT_LINE_LIMIT = 160


@dataclass(frozen=True)
class RegressionFile:
    filename: str
    text: str


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def fake_surname(original: str) -> str:
    digest = hashlib.sha256(f"surname:{original.lower()}".encode()).digest()
    return LAST_NAMES[int.from_bytes(digest[:4], "big") % len(LAST_NAMES)]


def _ago(at: dt.datetime | None, now: dt.datetime) -> str:
    """The runner's duration before `now` (`9d`, `3h`, `30m`; `0m` at or after it)."""
    if at is None:
        return "0m"
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    seconds = max(0, int((now - at).total_seconds()))
    if seconds >= 86400:
        return f"{seconds // 86400}d"
    if seconds >= 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m"


def _item(order: Order) -> str:
    names = " ".join(item.name.lower() for item in order.items if getattr(item, "name", None))
    return next((item for item in RUNNER_ITEMS if item in names), DEFAULT_ITEM)


def _order_refs(orders: Sequence[Order], texts: Sequence[str]) -> dict[str, str]:
    """The customer's order numbers the chat mentions → o1, o2, … (in order of mention)."""
    refs: dict[str, str] = {}
    joined = "\n".join(texts)
    mentioned = sorted(
        (
            (found.start(), order.number)
            for order in orders
            for found in [
                re.search(rf"(?<![\w#])[#Aa]?{re.escape(order.number.lstrip('#Aa'))}(?!\d)", joined)
            ]
            if found
        ),
    )
    for _at, number in mentioned:
        refs.setdefault(number, f"o{len(refs) + 1}")
    return refs


def _placeholders(text: str, refs: dict[str, str], customer: Customer | None) -> str:
    """The customer's own details and orders → the runner's placeholders (before the
    anonymiser sees the text)."""
    for number, ref in refs.items():
        digits = number.lstrip("#Aa")
        text = re.sub(rf"(?<![\w#])[#Aa]?{re.escape(digits)}(?!\d)", "{" + ref + "}", text)
    if customer is not None and customer.email:
        text = re.sub(re.escape(customer.email), "{c.email}", text, flags=re.IGNORECASE)
    if customer is not None and customer.name and len(customer.name.strip()) > 1:
        text = re.sub(rf"\b{re.escape(customer.name.strip())}\b", "{c.name}", text)
    return text


def _clean(anonymiser: Anonymiser, text: str) -> str:
    """Anonymise around the `{…}` placeholders (left as they are)."""
    pieces = re.split(r"(\{[\w.]+\})", text)
    return "".join(p if re.fullmatch(r"\{[\w.]+\}", p) else anonymiser.text(p) for p in pieces)


async def regression_conversation(
    session: AsyncSession, message_id: int, root: Path
) -> RegressionFile:
    """The conversation of a flagged turn, up to that turn, as a regression file."""
    turn = await session.get(TurnUnderstanding, message_id)
    if turn is None:
        raise NotFound("No such turn.")
    conversation = await session.get(Conversation, turn.conversation_id)
    if conversation is None:
        raise NotFound("No such conversation.")
    messages = list(
        await session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation.id, Message.id > 0)
            .order_by(Message.id)
        )
    )
    flagged = next((m for m in messages if m.id == message_id), None)
    if flagged is None or flagged.text == ERASED_TEXT:
        raise NotFound("The transcript of this turn is gone.")
    # Up to the flagged turn and the bot's replies to it (until the customer's next message).
    end = next(
        (
            i
            for i, m in enumerate(messages)
            if m.id > message_id and m.sender is MessageSender.customer
        ),
        len(messages),
    )
    messages = messages[:end]
    customer = (
        await session.get(Customer, conversation.customer_id) if conversation.customer_id else None
    )
    if customer is not None and customer.is_anonymous:
        customer = None
    orders: list[Order] = []
    if customer is not None:
        orders = list(
            await session.scalars(
                select(Order)
                .where(Order.customer_id == customer.id)
                .options(selectinload(Order.items))
                .order_by(Order.id)
            )
        )
    refs = _order_refs(orders, [m.text for m in messages])
    training = sorted((root / "data" / "nlu").glob("*.yml"))
    anonymiser = Anonymiser(
        name_tokens(await session.scalars(select(Customer.name))), vocabulary(training)
    )
    reasons = sorted(
        await session.scalars(select(TurnFlag.reason).where(TurnFlag.message_id == message_id))
    )
    now = flagged.created_at

    def clean(text: str) -> str:
        return _clean(anonymiser, _placeholders(text, refs, customer))

    rid = f"rv{message_id}"
    verdict = turn.review_status.value if turn.review_status else "not reviewed"
    meaning = turn.reviewed_intent or turn.intent or "?"
    lines = [
        "# A conversation saved from the review inbox (issue #24); format:",
        "# bench/conversations/README.md. Save it into tests/conversations/ (or move the",
        "# conversation into the file of its area), write expectations from the bot replies",
        "# in the comments, and drop `known_bug:` once the bot gets the flagged turn right.",
        "# Personal data replaced (placeholders; orders and the customer are made up fresh",
        "# every run).",
        "category: reviewed",
        "issue: 24",
        "defaults: {clear_scheduled_surveys: true}",
        "macros:",
        f"  NOT_UNDERSTOOD: {_quoted(NOT_UNDERSTOOD)}",
        "conversations:",
        f"- id: {rid}",
        f"  about: {_quoted(f'{meaning}: {clean(flagged.text)}'[:120])}",
        "  known_bug: "
        + _quoted(
            f"flagged in the review inbox ({', '.join(reasons) or 'no reason left'}; "
            f"{verdict}{': ' + turn.reviewed_intent if turn.reviewed_intent else ''})"
        ),
    ]
    if customer is not None:
        original = customer.name or customer.external_id
        placeholder = f"{fake_name(original)} {fake_surname(original)}"
        lines.append(f"  customers: {{c: {{name: {_quoted(placeholder)}}}}}")
        setup = []
        for order in orders:
            ref = refs.get(order.number)
            if ref is None:
                continue
            setup.append(
                f"    - {{event: order.placed, customer: c, order: {ref}, "
                f"item: {_item(order)}, ago: {_ago(order.placed_at, now)}}}"
            )
            if order.shipped_at is not None:
                eta = ""
                if order.estimated_delivery is not None:
                    eta_at = order.estimated_delivery
                    eta_at = eta_at if eta_at.tzinfo else eta_at.replace(tzinfo=dt.timezone.utc)
                    eta = (
                        f", eta_ago: {_ago(eta_at, now)}"
                        if eta_at <= now
                        else f", eta_in: {_ago(now, eta_at)}"
                    )
                setup.append(
                    f"    - {{event: order.shipped, order: {ref}, "
                    f"ago: {_ago(order.shipped_at, now)}{eta}}}"
                )
            if order.delivered_at is not None:
                setup.append(
                    f"    - {{event: order.delivered, order: {ref}, "
                    f"ago: {_ago(order.delivered_at, now)}}}"
                )
        if setup:
            lines += ["  setup:", *setup]
        lines.append("  signed_in: c" if conversation.identified_by else "  signed_in: null")
    else:
        lines.append("  signed_in: null")
    lines.append("  turns:")
    for message in messages:
        if message.sender is MessageSender.customer:
            if message.text == ERASED_TEXT:
                continue
            lines.append(f"    - say: {_quoted(clean(message.text))}")
            if message.id == message_id and turn.review_status is not ReviewStatus.dismissed:
                lines.append("      expect: {none: ['$NOT_UNDERSTOOD']}")
        elif message.text != ERASED_TEXT:
            said = " ".join(clean(message.text).split())
            if len(said) > BOT_LINE_LIMIT:
                said = said[: BOT_LINE_LIMIT - 1] + "…"
            lines.append(f"      # {message.sender.value}: {said}")
    return RegressionFile(f"reviewed-{rid}.yml", "\n".join(lines) + "\n")
