"""Generated data sets for "what to fix first" and the alerts (issue #21), with a reference.

`generate(seed, planted)` plans customers with one to three purchase journeys (each its own
order) between 2025-07-01 and 2026-03-31 UTC, with CSAT/NPS answers and comments on two
channels; one pitfall is planted:

* `"use_email"`: CSAT answers given by email at the use stage are 1-3 and those customers
  never come back (the (use, email) cell is a CSAT pitfall);
* `"support_billing"`: negative billing comments at the support stage come with NPS 0-4
  and no return (a negative theme; no pitfall of the map).

`reference(...)` recomputes the ranking of bot/domain/fix_first.py in plain Python from the
plan (not from the database), as docs/dashboard.md states it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.enums import (
    Channel,
    FeedbackKind,
    FeedbackSource,
    LifecycleKind,
    OrderStatus,
    Stage,
)
from bot.storage.models import Customer, Feedback, Lifecycle, Order

NOW = datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc)
START = datetime(2025, 7, 1, tzinfo=timezone.utc)
DAYS = 270
WINDOW = timedelta(days=90)
CHANNELS = (Channel.website_chat, Channel.email)
STAGES = (Stage.purchase, Stage.use, Stage.support)
NEGATIVE_TEXTS = {
    "delivery": "the parcel was late again",
    "billing": "charged twice, the invoice is wrong",
    "product_quality": "it broke after a week",
}


@dataclass
class RowPlan:
    stage: Stage
    channel: Channel
    kind: FeedbackKind
    score: int | None
    created_at: datetime
    theme: str | None = None  # a negative comment (sentiment -0.6) with this theme


@dataclass
class JourneyPlan:
    opened_at: datetime
    stage: Stage
    rows: list[RowPlan] = field(default_factory=list)
    lifecycle_id: int = 0


@dataclass
class CustomerPlan:
    external_id: str
    journeys: list[JourneyPlan] = field(default_factory=list)


def _score(rng: random.Random, kind: FeedbackKind, bad: bool) -> int:
    if kind is FeedbackKind.csat:
        return rng.choice((1, 2, 3)) if bad else rng.choice((3, 4, 4, 5, 5, 5, 5, 5))
    return rng.choice((0, 2, 4)) if bad else rng.choice((5, 7, 8, 9, 9, 10, 10))


def generate(seed: int, planted: str) -> list[CustomerPlan]:
    rng = random.Random(seed)
    customers = []
    for n in range(160):
        plan = CustomerPlan(f"F{seed}-{n}")
        unhappy = False
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            opened = START + timedelta(days=rng.uniform(0, DAYS), minutes=n)
            stage = rng.choice(STAGES)
            journey = JourneyPlan(opened, stage)
            hours = 1
            for row_stage in STAGES[: STAGES.index(stage) + 1]:
                channel = rng.choices(CHANNELS, weights=(3, 1))[0]
                at = opened + timedelta(hours=hours)
                hours += 5
                bad = False
                if planted == "use_email":
                    bad = row_stage is Stage.use and channel is Channel.email
                kind = FeedbackKind.nps if row_stage is Stage.support else FeedbackKind.csat
                theme = None
                if row_stage is Stage.support and rng.random() < 0.5:
                    theme = rng.choice(tuple(NEGATIVE_TEXTS))
                    if planted == "support_billing" and theme == "billing":
                        bad = True
                elif rng.random() < 0.15:
                    theme = rng.choice(("delivery", "product_quality"))
                journey.rows.append(RowPlan(row_stage, channel, kind, _score(rng, kind, bad), at))
                if theme is not None:
                    at = at + timedelta(minutes=30)
                    journey.rows.append(
                        RowPlan(row_stage, channel, FeedbackKind.comment, None, at, theme)
                    )
                unhappy = unhappy or bad
            plan.journeys.append(journey)
            if unhappy:
                break  # an unhappy customer does not come back
        plan.journeys.sort(key=lambda j: j.opened_at)
        customers.append(plan)
    return customers


async def write(
    session_factory: async_sessionmaker[AsyncSession], plans: list[CustomerPlan]
) -> None:
    """Customers, one order and one lifecycle per journey, and the feedback rows."""
    async with session_factory() as db, db.begin():
        for plan in plans:
            customer = Customer(external_id=plan.external_id, created_at=START)
            db.add(customer)
            await db.flush()
            for i, journey in enumerate(plan.journeys):
                order = Order(
                    number=f"{plan.external_id}-{i}",
                    customer_id=customer.id,
                    status=OrderStatus.delivered,
                    total=Decimal("10.00"),
                    shipping_address="x",
                    placed_at=journey.opened_at,
                )
                db.add(order)
                await db.flush()
                lifecycle = Lifecycle(
                    customer_id=customer.id,
                    kind=LifecycleKind.one_time,
                    stage=journey.stage,
                    opened_at=journey.opened_at,
                    order_id=order.id,
                )
                db.add(lifecycle)
                await db.flush()
                journey.lifecycle_id = lifecycle.id
                for k, row in enumerate(journey.rows):
                    db.add(
                        Feedback(
                            idempotency_key=f"ff:{plan.external_id}:{i}:{k}",
                            customer_id=customer.id,
                            lifecycle_id=lifecycle.id,
                            stage=row.stage,
                            channel=row.channel,
                            source=FeedbackSource.chat_survey,
                            kind=row.kind,
                            score=row.score,
                            text=NEGATIVE_TEXTS[row.theme] if row.theme else None,
                            sentiment=-0.6 if row.theme else None,
                            themes=[row.theme] if row.theme else [],
                            created_at=row.created_at,
                        )
                    )
        await db.flush()


# ---- the reference -------------------------------------------------------------------------


@dataclass
class _Side:
    journeys: int = 0
    csat_n: int = 0
    csat_good: int = 0
    nps_n: int = 0
    nps_net: int = 0
    eligible: int = 0
    returned: int = 0


def _journey_facts(plans: list[CustomerPlan], as_of: datetime = NOW) -> dict[int, dict[str, Any]]:
    facts: dict[int, dict[str, Any]] = {}
    for plan in plans:
        for i, journey in enumerate(plan.journeys):
            nxt = plan.journeys[i + 1].opened_at if i + 1 < len(plan.journeys) else None
            csat = [r.score for r in journey.rows if r.kind is FeedbackKind.csat]
            nps = [r.score for r in journey.rows if r.kind is FeedbackKind.nps]
            facts[journey.lifecycle_id] = {
                "csat_n": len(csat),
                "csat_good": sum(1 for s in csat if s is not None and s >= 4),
                "nps_n": len(nps),
                "nps_net": sum(1 if s >= 9 else -1 if s <= 6 else 0 for s in nps if s is not None),
                "eligible": journey.opened_at + WINDOW <= as_of,
                "returned": nxt is not None and nxt <= journey.opened_at + WINDOW,
                "cells": {(r.stage.value, r.channel.value) for r in journey.rows},
                "themes": {(r.stage.value, r.theme) for r in journey.rows if r.theme},
            }
    return facts


def _side(facts: dict[int, dict[str, Any]], ids: set[int]) -> _Side:
    side = _Side()
    for lid in ids:
        f = facts[lid]
        side.journeys += 1
        side.csat_n += f["csat_n"]
        side.csat_good += f["csat_good"]
        side.nps_n += f["nps_n"]
        side.nps_net += f["nps_net"]
        side.eligible += int(f["eligible"])
        side.returned += int(f["eligible"] and f["returned"])
    return side


def _shortfall(gn: int, g: int, rn: int, r: int, span: float, least: int) -> float:
    if gn < least or rn < least:
        return 0.0
    return max(0.0, (100 * r / rn - 100 * g / gn) / span)


def reference(
    plans: list[CustomerPlan],
    pitfalls: dict[tuple[str, str | None], list[str]],
    min_answers: int = 10,
    min_journeys: int = 5,
    as_of: datetime = NOW,
) -> list[tuple[str, int, float]]:
    """(key, journeys, impact) of the top ten, for the given journey-map pitfall cells."""
    facts = _journey_facts(plans, as_of)
    everyone = set(facts)
    candidates: list[tuple[str, set[int]]] = []
    for (stage, channel), _metrics in pitfalls.items():
        ids = {
            lid
            for lid, f in facts.items()
            if any(s == stage and (channel is None or c == channel) for s, c in f["cells"])
        }
        candidates.append((f"pitfall:{stage}:{channel or ''}", ids))
    themes: dict[tuple[str, str], set[int]] = {}
    for lid, f in facts.items():
        for key in f["themes"]:
            themes.setdefault(key, set()).add(lid)
    for (stage, theme), ids in themes.items():
        if len(ids) >= min_journeys:
            candidates.append((f"theme:{stage}:{theme}", ids))
    ranked = []
    for key, ids in candidates:
        g, r = _side(facts, ids), _side(facts, everyone - ids)
        impact = len(ids) * (
            _shortfall(g.csat_n, g.csat_good, r.csat_n, r.csat_good, 100, min_answers)
            + _shortfall(g.nps_n, g.nps_net, r.nps_n, r.nps_net, 200, min_answers)
            + _shortfall(g.eligible, g.returned, r.eligible, r.returned, 100, min_answers)
        )
        ranked.append((key, len(ids), round(impact, 1)))
    ranked.sort(key=lambda k: (-k[2], -k[1], k[0]))
    return ranked[:10]


def reference_pitfalls(plans: list[CustomerPlan]) -> dict[tuple[str, str | None], list[str]]:
    """The journey map's CSAT (< 60 %) and NPS (< 0) pitfalls on at least 5 answers."""
    scores: dict[tuple[str, str | None], dict[str, list[int]]] = {}
    for plan in plans:
        for journey in plan.journeys:
            for row in journey.rows:
                if row.score is None or row.kind.value not in ("csat", "nps"):
                    continue
                keys: tuple[tuple[str, str | None], ...] = (
                    (row.stage.value, None),
                    (row.stage.value, row.channel.value),
                )
                for key in keys:
                    scores.setdefault(key, {"csat": [], "nps": []})[row.kind.value].append(
                        row.score
                    )
    found: dict[tuple[str, str | None], list[str]] = {}
    for cell, by_kind in scores.items():
        csat, nps = by_kind["csat"], by_kind["nps"]
        if len(csat) >= 5 and 100 * sum(1 for s in csat if s >= 4) / len(csat) < 60:
            found.setdefault(cell, []).append("csat")
        if len(nps) >= 5:
            net = sum(1 if s >= 9 else -1 if s <= 6 else 0 for s in nps)
            if 100 * net / len(nps) < 0:
                found.setdefault(cell, []).append("nps")
    return found
