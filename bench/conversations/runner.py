"""Drives one held-out conversation: shop events, the chat over /ws, agent steps, checks."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import aiohttp
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.conversations.spec import Conversation, pattern, substitute
from bench.ws import CLOSED, read_frames, simulated_client
from bot.domain import shop_events, surveys
from bot.domain.enums import EscalationStatus
from bot.domain.identity import issue_token
from bot.storage.models import (
    Conversation as ConversationRow,
)
from bot.storage.models import (
    Customer,
    Escalation,
    Feedback,
    Order,
    OrderItem,
    ReturnLine,
    Subscription,
    SurveyDispatch,
)

# A small catalogue for `item:` in the files (the held-out files name items, not prices).
CATALOGUE: dict[str, tuple[str, str, str]] = {
    "casserole": ("KIT-CAS-24", "Cast-iron casserole 24 cm", "89.00"),
    "towel": ("HOM-LIN-TWL", "Linen towel", "24.00"),
    "jumper": ("APP-MER-JMP", "Merino jumper", "79.00"),
    "mug": ("KIT-STO-MUG", "Stoneware mug", "14.00"),
    "shirt": ("APP-LIN-SHT", "Linen shirt", "49.00"),
    "kettle": ("KIT-GNK-KTL", "Gooseneck kettle", "59.00"),
    "knife": ("KIT-CHF-20", "Chef's knife 20 cm", "65.00"),
}
AGENT_EMAIL, AGENT_PASSWORD = "agent@example.com", "demo-password-123"
Frame = dict[str, Any]

# The signing helper was renamed when signatures got a timestamp (`sign` → `signature_header`,
# `t=…,v1=…`); the older name keeps the runner working on older commits.
_SIGN = getattr(shop_events, "signature_header", None) or shop_events.sign


def _ago(spec: str | None) -> timedelta:
    if not spec:
        return timedelta(0)
    match = re.fullmatch(r"(\d+)([dhm])", str(spec).strip())
    if not match:
        raise ValueError(f"bad duration {spec!r}")
    amount, unit = int(match.group(1)), match.group(2)
    return {
        "d": timedelta(days=amount),
        "h": timedelta(hours=amount),
        "m": timedelta(minutes=amount),
    }[unit]


def _order_lines(names: list[str]) -> list[dict[str, Any]]:
    """`items: [casserole, 2 mug]` (or `item: mug`): the order's lines from CATALOGUE."""
    lines = []
    for spec in names:
        qty, _, name = str(spec).rpartition(" ")
        sku, title, price = CATALOGUE[name]
        lines.append({"sku": sku, "name": title, "qty": int(qty or 1), "price": price})
    return lines


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Result:
    conversation: Conversation
    failures: list[str] = field(default_factory=list)
    wrong_changes: list[str] = field(default_factory=list)
    request_failed: bool = False
    request_text_stored: bool = False
    dispatch_counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    # what was said and answered, turn by turn (printed by `--transcript`, for development sets)
    transcript: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.wrong_changes and self.error is None

    @property
    def interfered(self) -> bool:
        return self.request_failed or self.request_text_stored


class Chat:
    """One customer's WebSocket, with every frame queued as it arrives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        self.ws = ws
        self.frames: asyncio.Queue[tuple[float, Frame]] = asyncio.Queue()
        self.reader = asyncio.create_task(read_frames(ws, self.frames, time.monotonic))
        self.last_buttons: list[dict[str, str]] = []
        self.token: str | None = None

    async def collect(self, *, until_typing_off: bool, quiet: float, limit: float) -> list[Frame]:
        """Bot/system messages until the typing indicator stops (when asked) and then `quiet`
        seconds without a frame, or `limit` seconds in all."""
        messages: list[Frame] = []
        deadline = time.monotonic() + limit
        typing_done = not until_typing_off
        typing_seen = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # A paused bot sends no typing frames: give up waiting for them after 5 s. Once
            # the bot is typing, its reply is awaited to the limit (a cold or loaded Rasa
            # takes longer than 5 s; the reply then landed in the next turn).
            if typing_done:
                wait = min(quiet, remaining)
            else:
                wait = remaining if typing_seen else min(5.0, remaining)
            try:
                _at, frame = await asyncio.wait_for(self.frames.get(), wait)
            except asyncio.TimeoutError:
                if typing_done:
                    break
                typing_done = True  # no typing frame at all (a paused bot): fall back to quiet
                continue
            if frame is CLOSED:
                break
            kind = frame.get("type")
            if kind == "typing" and frame.get("on"):
                typing_seen = True
            elif kind == "typing" and not frame.get("on"):
                typing_done = True
            elif kind == "message" and frame.get("sender") in ("bot", "system"):
                messages.append(frame)
                if frame.get("sender") == "system":
                    typing_done = True  # the web service's own note: the bot was not asked
                if frame.get("buttons"):
                    self.last_buttons = list(frame["buttons"])
            elif kind == "error":
                messages.append(
                    {"type": "error", "sender": "system", "text": json.dumps(frame.get("error"))}
                )
                typing_done = True
        return messages

    async def hello(self, identity: str | None, token: str | None) -> Frame:
        await self.ws.send_json({"type": "hello", "token": token, "identity": identity})
        while True:
            _at, frame = await asyncio.wait_for(self.frames.get(), 15)
            if frame is CLOSED:
                raise RuntimeError("socket closed before the session frame")
            if frame.get("type") == "session":
                self.token = frame.get("token")
                return frame
            if frame.get("type") == "error":
                raise RuntimeError(f"hello refused: {frame}")

    async def say(self, text: str) -> list[Frame]:
        await self.ws.send_json({"type": "message", "text": text, "client_id": f"{time.time_ns()}"})
        return await self.collect(until_typing_off=True, quiet=0.7, limit=30)

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


class Runner:
    def __init__(
        self,
        base_url: str,
        sessions: async_sessionmaker[AsyncSession],
        events_secret: str,
        widget_secret: str,
        http: aiohttp.ClientSession,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.sessions = sessions
        self.events_secret = events_secret
        self.widget_secret = widget_secret
        self.http = http
        self.run_tag = f"{random.randrange(16**4):04x}"
        self.used_numbers: set[str] = set()
        self.staff_csrf: str | None = None
        self.client: dict[str, str] = {}  # X-Forwarded-For of the conversation being run

    # ---- setup ---------------------------------------------------------------------------

    async def _order_number(self) -> str:
        """A fresh order number: not used in this run, nor by any order already in the
        database (the demo shop's 2 000 generated customers hold thousands of numbers, and
        an order.placed event for another customer's number is refused)."""
        while True:
            number = f"A{random.randrange(20000, 99999)}"
            if number in self.used_numbers:
                continue
            self.used_numbers.add(number)
            async with self.sessions() as db:
                taken = await db.scalar(select(Order.id).where(Order.number == number))
            if taken is None:
                return number

    async def send_event(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = json.dumps(body).encode()
        url = f"{self.base_url}/api/events"
        for _attempt in range(100):
            headers = {
                "Content-Type": "application/json",
                "X-Signature": _SIGN(self.events_secret, raw),
            }
            async with self.http.post(url, data=raw, headers=headers) as response:
                answer: dict[str, Any] = await response.json(content_type=None)
                if response.status >= 300:
                    raise RuntimeError(
                        f"event {body['type']} refused: HTTP {response.status} {answer}"
                    )
            if answer.get("status") == "applied":
                return answer
            if answer.get("status") == "failed":
                raise RuntimeError(f"event {body['type']} failed: {answer.get('error')}")
            await asyncio.sleep(0.1)
        raise RuntimeError(f"event {body['id']} not applied after 10 s")

    def event_body(
        self, step: dict[str, Any], values: dict[str, str], refs: dict[str, str], now: datetime
    ) -> dict[str, Any]:
        occurred = now - _ago(step.get("ago"))
        kind = str(step["event"])
        body: dict[str, Any] = {
            "id": f"evt_bench_{self.run_tag}_{time.time_ns()}",
            "type": kind,
            "occurred_at": _iso(occurred),
        }
        if kind.startswith("order."):
            ref = step["order"]
            customer_ref = step.get("customer") or refs[f"owner:{ref}"]
            refs[f"owner:{ref}"] = customer_ref
            order: dict[str, Any] = {"number": values[ref]}
            if kind == "order.placed":
                lines = _order_lines(step.get("items") or [step.get("item", "mug")])
                total = f"{sum(Decimal(line['price']) * line['qty'] for line in lines):.2f}"
                order.update(
                    items=lines,
                    total=total,
                    currency="EUR",
                    placed_at=_iso(occurred),
                    shipping_address="1 Test Street, Testville",
                )
            if kind == "order.shipped":
                order.update(carrier="DHL", tracking_number=f"JD{random.randrange(10**9):09d}")
                if "eta_in" in step:
                    order["estimated_delivery"] = _iso(now + _ago(step["eta_in"]))
                if "eta_ago" in step:
                    order["estimated_delivery"] = _iso(now - _ago(step["eta_ago"]))
            body["order"] = order
        else:
            ref = step["sub"]
            customer_ref = step.get("customer") or refs[f"owner:{ref}"]
            refs[f"owner:{ref}"] = customer_ref
            sub: dict[str, Any] = {"id": values[ref]}
            if kind in ("subscription.started", "subscription.renewed"):
                if kind == "subscription.started":
                    refs[f"plan:{ref}"] = str(step.get("plan", "Coffee Explorer Box"))
                    sub.update(plan=refs[f"plan:{ref}"], price="19.00", currency="EUR")
                start = occurred
                sub.update(period_start=_iso(start), period_end=_iso(start + timedelta(days=30)))
            body["subscription"] = sub
        body["customer"] = {
            "external_id": values[customer_ref],
            "email": values[f"{customer_ref}.email"],
            "name": values[f"{customer_ref}.name"],
        }
        return body

    # ---- staff ---------------------------------------------------------------------------

    async def staff_post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        if self.staff_csrf is None:
            async with self.http.post(
                f"{self.base_url}/console/api/login",
                json={"email": AGENT_EMAIL, "password": AGENT_PASSWORD},
                headers={"X-Requested-With": "console"},
            ) as response:
                if response.status != 200:
                    raise RuntimeError(f"agent sign-in failed: HTTP {response.status}")
                self.staff_csrf = str((await response.json())["csrf_token"])
        async with self.http.post(
            f"{self.base_url}{path}", json=body or {}, headers={"X-CSRF-Token": self.staff_csrf}
        ) as response:
            if response.status >= 300:
                raise RuntimeError(f"POST {path}: HTTP {response.status} {await response.text()}")
            return await response.json()

    # ---- database ------------------------------------------------------------------------

    async def customer_ids(self, external_ids: list[str]) -> list[int]:
        async with self.sessions() as db:
            return list(
                (
                    await db.scalars(
                        select(Customer.id).where(Customer.external_id.in_(external_ids))
                    )
                ).all()
            )

    async def return_lines(self, order_number: str) -> list[str]:
        """An order's item-level returns as "1 Linen towel changed_mind refund"."""
        async with self.sessions() as db:
            rows = await db.execute(
                select(
                    ReturnLine.quantity, OrderItem.name, ReturnLine.reason, ReturnLine.resolution
                )
                .join(OrderItem, OrderItem.id == ReturnLine.order_item_id)
                .join(Order, Order.id == OrderItem.order_id)
                .where(Order.number == order_number)
            )
            return [" ".join(str(part) for part in row) for row in rows.all()]

    async def snapshot(self, customer_ids: list[int]) -> dict[str, tuple[Any, ...]]:
        async with self.sessions() as db:
            state: dict[str, tuple[Any, ...]] = {}
            for order in (
                await db.scalars(select(Order).where(Order.customer_id.in_(customer_ids)))
            ).all():
                state[f"order:{order.number}"] = (
                    order.status.value,
                    order.return_requested_at is not None,
                    order.shipping_address,
                )
            for sub in (
                await db.scalars(
                    select(Subscription).where(Subscription.customer_id.in_(customer_ids))
                )
            ).all():
                state[f"subscription:{sub.external_id}"] = (sub.status.value,)
            return state

    async def latest_conversation(self, customer_id: int) -> str:
        async with self.sessions() as db:
            row = await db.scalar(
                select(ConversationRow.id)
                .where(ConversationRow.customer_id == customer_id)
                .order_by(ConversationRow.created_at.desc())
                .limit(1)
            )
        if row is None:
            raise RuntimeError("no conversation for the customer")
        return str(row)

    async def open_escalation(self, conversation_id: str) -> int:
        async with self.sessions() as db:
            row = await db.scalar(
                select(Escalation.id)
                .where(
                    Escalation.conversation_id == conversation_id,
                    Escalation.status != EscalationStatus.resolved,
                )
                .order_by(Escalation.id.desc())
                .limit(1)
            )
        if row is None:
            raise RuntimeError("no open escalation to claim or resolve")
        return int(row)

    # ---- one conversation ----------------------------------------------------------------

    async def run(self, conversation: Conversation) -> Result:
        result = Result(conversation)
        started = time.monotonic()
        try:
            await self._run(conversation, result)
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.monotonic() - started
        return result

    async def _run(self, conversation: Conversation, result: Result) -> None:
        self.client = simulated_client()  # this customer's address (per-address limits on)
        raw = conversation.raw
        now = datetime.now(timezone.utc)
        values: dict[str, str] = {"run": self.run_tag}
        refs: dict[str, str] = {}
        for ref, info in conversation.customers.items():
            external = f"HX{self.run_tag}{conversation.id}{ref}".upper()
            values[ref] = external
            values[f"{ref}.email"] = f"{external.lower()}@example.test"
            values[f"{ref}.name"] = str((info or {}).get("name", "Test Customer"))
        setup: list[dict[str, Any]] = list(raw.get("setup") or [])
        mid_events = [t["event"] for t in raw.get("turns", []) if "event" in t]
        for step in [*setup, *mid_events]:
            for key in ("order", "sub"):
                if key in step and step[key] not in values:
                    values[step[key]] = (
                        await self._order_number()
                        if key == "order"
                        else f"SUB-{self.run_tag}-{conversation.id}-{step[key]}"
                    )
                    values[f"{step[key]}.digits"] = values[step[key]].lstrip("A")
        for step in setup:
            await self.send_event(self.event_body(step, values, refs, now))
        externals = [values[ref] for ref in conversation.customers]
        customer_ids = await self.customer_ids(externals)
        if conversation.clear_scheduled_surveys and customer_ids:
            async with self.sessions() as db, db.begin():
                await db.execute(
                    update(SurveyDispatch)
                    .where(
                        SurveyDispatch.customer_id.in_(customer_ids),
                        SurveyDispatch.sent_at.is_(None),
                    )
                    .values(expired_at=datetime.now(timezone.utc))
                )
        before = await self.snapshot(customer_ids)
        async with self.sessions() as db:
            max_feedback = int(
                await db.scalar(select(Feedback.id).order_by(Feedback.id.desc()).limit(1)) or 0
            )

        signed_in = raw.get("signed_in")
        identity = (
            issue_token(
                self.widget_secret,
                values[signed_in],
                email=values[f"{signed_in}.email"],
                name=values[f"{signed_in}.name"],
            )
            if signed_in
            else None
        )
        macros = conversation.macros
        chat: Chat | None = None
        previous_text: str | None = None
        request_texts: list[str] = []
        try:
            turns: list[dict[str, Any]] = list(raw.get("turns") or [])
            if not turns or "open" not in turns[0]:
                turns.insert(0, {"open": {}, "implicit": True})
            for index, turn in enumerate(turns):
                label = f"turn {index + 1}"
                replies: list[Frame] = []
                if "open" in turn:
                    options = turn.get("open") or {}
                    resume_token = (
                        chat.token if (chat and not options.get("new_conversation")) else None
                    )
                    if chat is not None:
                        await chat.close()
                    ws = await self.http.ws_connect(f"{self.base_url}/ws", headers=self.client)
                    chat = Chat(ws)
                    await chat.hello(identity, resume_token)
                    replies = await chat.collect(until_typing_off=False, quiet=1.5, limit=6)
                    label += " (open)"
                elif chat is None:
                    raise RuntimeError("turn before the chat was opened")
                elif "say" in turn:
                    text = substitute(str(turn["say"]), values, regex=False)
                    label += f" say {text!r}"
                    replies = await chat.say(text)
                    if turn.get("request"):
                        request_texts.append(text)
                elif "click" in turn:
                    wanted = pattern(str(turn["click"]), macros, values)
                    button = next(
                        (b for b in chat.last_buttons if wanted.search(str(b.get("title", "")))),
                        None,
                    )
                    label += f" click {turn['click']!r}"
                    if button is None:
                        titles = [b.get("title") for b in chat.last_buttons]
                        result.failures.append(
                            f"{label}: no offered button matches (offered {titles})"
                        )
                        break
                    replies = await chat.say(str(button.get("payload", button.get("title"))))
                elif "listen" in turn:
                    replies = await chat.collect(
                        until_typing_off=False,
                        quiet=float(turn["listen"]),
                        limit=float(turn["listen"]) + 5,
                    )
                    label += " listen"
                elif "event" in turn:
                    step = turn["event"]
                    await self.send_event(
                        self.event_body(step, values, refs, datetime.now(timezone.utc))
                    )
                    # the shop's own change is no account change by the bot
                    ref = step.get("order") or step.get("sub")
                    key = f"{'order' if 'order' in step else 'subscription'}:{values[ref]}"
                    now_state = await self.snapshot(customer_ids)
                    if key in now_state:
                        before[key] = now_state[key]
                    label += " event"
                elif "agent" in turn:
                    action = str(turn["agent"])
                    label += f" agent {action}"
                    customer_ids = customer_ids or await self.customer_ids(externals)
                    if not customer_ids:
                        raise RuntimeError("agent step without a known customer")
                    conversation_id = await self.latest_conversation(customer_ids[0])
                    if action == "say":
                        await self.staff_post(
                            f"/console/api/conversations/{conversation_id}/messages",
                            {"text": str(turn.get("text", "Hello"))},
                        )
                    else:
                        escalation = await self.open_escalation(conversation_id)
                        await self.staff_post(f"/console/api/escalations/{escalation}/{action}")
                    replies = await chat.collect(until_typing_off=False, quiet=1.5, limit=8)
                text_out = " | ".join(str(m.get("text", "")) for m in replies)
                result.transcript.append(f"{label} → {text_out}")
                problems = self.check_turn(
                    turn.get("expect") or {}, replies, text_out, previous_text, turn, macros, values
                )
                for problem in problems:
                    result.failures.append(f"{label}: {problem} — bot said: {text_out[:300]!r}")
                if problems and turn.get("request"):
                    result.request_failed = True
                if replies:
                    previous_text = text_out
        finally:
            if chat is not None:
                await chat.close()
        await asyncio.sleep(0.3)  # actions write after the reply is shown
        # a customer known only from the identity token is created by the chat itself
        customer_ids = customer_ids or await self.customer_ids(externals)
        await self.check_rows(
            conversation, result, customer_ids, before, values, max_feedback, request_texts
        )

    @staticmethod
    def check_turn(
        expect: dict[str, Any],
        replies: list[Frame],
        text: str,
        previous: str | None,
        turn: dict[str, Any],
        macros: dict[str, str],
        values: dict[str, str],
    ) -> list[str]:
        problems: list[str] = []
        for regex in expect.get("all") or []:
            if not pattern(str(regex), macros, values).search(text):
                problems.append(f"missing {regex!r}")
        anys = expect.get("any") or []
        if anys and not any(pattern(str(r), macros, values).search(text) for r in anys):
            problems.append(f"none of {anys!r}")
        for regex in expect.get("none") or []:
            if pattern(str(regex), macros, values).search(text):
                problems.append(f"unwanted {regex!r}")
        titles = [str(b.get("title", "")) for m in replies for b in (m.get("buttons") or [])]
        for regex in expect.get("buttons") or []:
            if not any(pattern(str(regex), macros, values).search(t) for t in titles):
                problems.append(f"no button {regex!r} (offered {titles})")
        numbers = [str(c.get("number", "")) for m in replies for c in (m.get("cards") or [])]
        for regex in expect.get("cards") or []:  # order cards, by number
            if not any(pattern(str(regex), macros, values).fullmatch(n) for n in numbers):
                problems.append(f"no order card {regex!r} (cards {numbers})")
        if expect.get("empty") and any(m.get("sender") == "bot" for m in replies):
            problems.append("the bot answered while it should be silent")
        if (
            turn.get("not_same_as_previous")
            and previous is not None
            and text.strip() == previous.strip()
        ):
            problems.append("same reply as the previous turn")
        return problems

    async def check_rows(
        self,
        conversation: Conversation,
        result: Result,
        customer_ids: list[int],
        before: dict[str, tuple[Any, ...]],
        values: dict[str, str],
        max_feedback: int,
        request_texts: list[str],
    ) -> None:
        rows: dict[str, Any] = conversation.raw.get("rows") or {}
        macros = conversation.macros
        async with self.sessions() as db:
            if customer_ids:
                feedback = list(
                    (
                        await db.scalars(
                            select(Feedback)
                            .where(Feedback.customer_id.in_(customer_ids))
                            .order_by(Feedback.id)
                        )
                    ).all()
                )
                escalations = list(
                    (
                        await db.scalars(
                            select(Escalation).where(Escalation.customer_id.in_(customer_ids))
                        )
                    ).all()
                )
                dispatches = list(
                    (
                        await db.scalars(
                            select(SurveyDispatch).where(
                                SurveyDispatch.customer_id.in_(customer_ids)
                            )
                        )
                    ).all()
                )
                conversations = list(
                    (
                        await db.scalars(
                            select(ConversationRow)
                            .where(ConversationRow.customer_id.in_(customer_ids))
                            .order_by(ConversationRow.created_at)
                        )
                    ).all()
                )
                customers = list(
                    (await db.scalars(select(Customer).where(Customer.id.in_(customer_ids)))).all()
                )
            else:  # anonymous: the rows written after this conversation started, by anonymous customers
                anonymous = select(Customer.id).where(Customer.is_anonymous.is_(True))
                feedback = list(
                    (
                        await db.scalars(
                            select(Feedback).where(
                                Feedback.id > max_feedback, Feedback.customer_id.in_(anonymous)
                            )
                        )
                    ).all()
                )
                escalations = []
                dispatches = []
                conversations = []
                customers = []
        after = await self.snapshot(customer_ids)
        fb = [(f.kind.value, f.score, f.text or "") for f in feedback]

        # feedback: every listed row present (one each), nothing else except `feedback_may` kinds
        remaining = list(fb)
        for wanted in rows.get("feedback") or []:
            kinds = wanted["kind"] if isinstance(wanted["kind"], list) else [wanted["kind"]]
            found = None
            for row in remaining:
                if row[0] not in kinds:
                    continue
                if "score" in wanted and row[1] != int(wanted["score"]):
                    continue
                if "text" in wanted and not pattern(str(wanted["text"]), macros, values).search(
                    row[2]
                ):
                    continue
                found = row
                break
            if found is None:
                result.failures.append(f"rows: no feedback {wanted} (stored {fb})")
            else:
                remaining.remove(found)
        if "feedback" in rows:
            allowed = set(rows.get("feedback_may") or [])
            extra = [row for row in remaining if row[0] not in allowed]
            if extra:
                result.failures.append(f"rows: unexpected feedback {extra}")
        for kind in rows.get("no_feedback_kinds") or []:
            if any(row[0] == kind for row in fb):
                result.failures.append(
                    f"rows: a {kind} row was stored {[r for r in fb if r[0] == kind]}"
                )
        if rows.get("no_second_csat") and sum(1 for row in fb if row[0] == "csat") > 1:
            result.failures.append(f"rows: a second csat {fb}")
        lowered = [row[2].strip().lower() for row in fb]
        if any(t.strip().lower() in lowered for t in request_texts):
            result.request_text_stored = True
            result.failures.append("rows: a request's text was stored as feedback")

        # escalations
        reasons = sorted(e.reason.value for e in escalations)
        if "escalations" in rows and customer_ids:
            left = list(reasons)
            for reason in rows.get("escalations") or []:
                if reason in left:
                    left.remove(reason)
                else:
                    result.failures.append(f"rows: no {reason} escalation (have {reasons})")
            allowed_esc = set(rows.get("escalations_may") or [])
            if any(r not in allowed_esc for r in left):
                result.failures.append(f"rows: unexpected escalations {left}")
        if "escalation_email" in rows:
            emails = [e.contact_email or "" for e in escalations]
            if not customer_ids:
                async with self.sessions() as db:
                    emails = [
                        e or ""
                        for e in (
                            await db.scalars(
                                select(Escalation.contact_email).where(
                                    Escalation.contact_email.like(f"visitor.{values['run']}%")
                                )
                            )
                        ).all()
                    ]
            if not any(
                pattern(str(rows["escalation_email"]), macros, values).search(e) for e in emails
            ):
                result.failures.append(
                    f"rows: no escalation with contact email {rows['escalation_email']!r}"
                )
        if "conversation_status" in rows and conversations:
            status = conversations[-1].status.value
            if status != rows["conversation_status"]:
                result.failures.append(
                    f"rows: conversation status {status}, expected {rows['conversation_status']}"
                )

        if "conversation_language" in rows and conversations:
            # the conversation's language, tagged for agents (a column since migration 0015)
            language = getattr(conversations[-1], "language", None)
            if language != rows["conversation_language"]:
                result.failures.append(
                    f"rows: conversation language {language}, expected {rows['conversation_language']}"
                )

        # account changes: only those listed, each with a clear yes in the file
        expected: dict[str, str] = {}
        for ref, status in (rows.get("orders") or {}).items():
            expected[f"order:{values[ref]}"] = str(status)
        for ref, status in (rows.get("subscriptions") or {}).items():
            expected[f"subscription:{values[ref]}"] = str(status)
        for key, old in before.items():
            new = after.get(key, old)
            if key in expected:
                want = expected[key]
                done = new[0] == want or (want == "return_started" and len(new) > 1 and new[1])
                if not done:
                    result.failures.append(f"rows: {key} is {new[0]}, expected {want}")
                    if new != old:
                        result.wrong_changes.append(f"{key}: {old} → {new}")
            elif new != old:
                result.wrong_changes.append(f"{key}: {old} → {new}")

        for ref, wanted in (rows.get("returns") or {}).items():
            stored = await self.return_lines(values[ref])
            if sorted(stored) != sorted(str(w) for w in wanted):
                result.failures.append(f"rows: returns of {ref} are {stored}, expected {wanted}")

        if "acquisition_source" in rows and customers:
            source = (
                customers[0].acquisition_source.value if customers[0].acquisition_source else None
            )
            if source != rows["acquisition_source"]:
                result.failures.append(
                    f"rows: acquisition source {source}, expected {rows['acquisition_source']}"
                )

        counts = {
            "due": len([d for d in dispatches if d.expired_at is None or d.sent_at is not None]),
            "offered": len([d for d in dispatches if d.sent_at is not None]),
            "accepted": len(
                [
                    d
                    for d in dispatches
                    if d.answered_at is not None
                    or any(f.survey_dispatch_id == d.id for f in feedback)
                ]
            ),
            "answered": len([d for d in dispatches if d.answered_at is not None]),
            "declined": len([d for d in dispatches if d.declined_at is not None]),
            # only the surveys shop events scheduled (not the in-chat CSAT after a request,
            # which SPEC §6's transactional rule allows in any conversation)
            "proactive_offered": len(
                [
                    d
                    for d in dispatches
                    if d.sent_at is not None and d.trigger in surveys.TRIGGER_KINDS
                ]
            ),
        }
        result.dispatch_counts = counts
        for key, want in (rows.get("dispatches") or {}).items():
            if counts.get(key) != int(want):
                result.failures.append(f"rows: dispatches {key}={counts.get(key)}, expected {want}")


def runs_alone(conversation: Conversation) -> bool:
    """Conversations that sign in to the console (one shared agent account) or wait for
    pushed messages (timing) are not run beside others."""
    turns = conversation.raw.get("turns") or []
    return any("agent" in turn or "listen" in turn for turn in turns)


async def run_many(
    base_url: str,
    sessions: async_sessionmaker[AsyncSession],
    secrets: tuple[str, str],
    conversations: list[Conversation],
    concurrency: int = 1,
    used_numbers: set[str] | None = None,
    on_result: Any = None,
) -> list[Result]:
    """Run `conversations`, `concurrency` at a time (each with its own Runner and HTTP
    session, so cookies and client addresses never mix), those that `runs_alone` one after
    the other at the end; results in that order. `secrets`: (events, widget)."""
    used = used_numbers if used_numbers is not None else set()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(conversation: Conversation) -> Result:
        async with gate, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            runner = Runner(base_url, sessions, *secrets, http)
            runner.used_numbers = used
            result = await runner.run(conversation)
        if on_result is not None:
            on_result(result)
        return result

    if concurrency <= 1:
        return [await one(c) for c in conversations]
    together = [c for c in conversations if not runs_alone(c)]
    results = list(await asyncio.gather(*(one(c) for c in together)))
    for conversation in (c for c in conversations if runs_alone(c)):
        results.append(await one(conversation))
    return results
