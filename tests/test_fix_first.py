"""What to fix first (issue #21): the ranking on a hand-checked case and on two generated data
sets (other seed, other planted pitfall), checked against a plain-Python reference; both
databases, fixed clock."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import fix_first, journey
from bot.domain.enums import Channel, FeedbackKind, Stage
from bot.domain.feedback_query import DateRange, FeedbackFilter
from tests import fix_first_data as data

RANGE = DateRange(date(2025, 7, 1), date(2026, 3, 31))
THRESHOLDS = journey.PitfallThresholds()


async def _ranked(
    session_factory: async_sessionmaker[AsyncSession], plans: list[data.CustomerPlan]
) -> list[fix_first.FixItem]:
    await data.write(session_factory, plans)
    flt = FeedbackFilter(RANGE)
    async with session_factory() as db:
        found = await journey.journey_map(db, flt, THRESHOLDS)
        return await fix_first.fix_first(db, flt, found, fix_first.FixRules(as_of=data.NOW))


@pytest.mark.parametrize(
    ("seed", "planted", "first"),
    [(11, "use_email", "pitfall:use:email"), (29, "support_billing", "theme:support:billing")],
)
async def test_ranking_matches_the_reference(
    session_factory: async_sessionmaker[AsyncSession], seed: int, planted: str, first: str
) -> None:
    plans = data.generate(seed, planted)
    items = await _ranked(session_factory, plans)
    expected = data.reference(plans, data.reference_pitfalls(plans))
    assert [(i.key, i.journeys, i.impact) for i in items] == expected
    assert items[0].key == first
    assert items[0].impact > 2 * items[1].impact  # the planted one stands out


async def test_hand_checked_effects(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """Ten customers with one bad email CSAT at the use stage, thirty happy ones.

    (use, email): 10 journeys, CSAT 0 % (0 of 10) against 100 % (30 of 30): shortfall 1.0;
    no NPS; return rate 0 of 10 against 30 of 30 (every happy customer came back within 90
    days, journeys opened 2025-07-01..): 1.0. Impact 10 x (1.0 + 0 + 1.0) = 20.0.
    """
    plans = []
    for n in range(40):
        bad = n < 10
        opened = datetime(2025, 7, 1 + n % 28, 10, tzinfo=timezone.utc)
        row = data.RowPlan(
            Stage.use,
            Channel.email if bad else Channel.website_chat,
            FeedbackKind.csat,
            2 if bad else 5,
            opened.replace(hour=11),
        )
        journeys = [data.JourneyPlan(opened, Stage.use, [row])]
        if not bad:
            later = datetime(2025, 9, 1 + n % 28, 10, tzinfo=timezone.utc)  # ~62 days on
            journeys.append(data.JourneyPlan(later, Stage.purchase))
        plans.append(data.CustomerPlan(f"H{n}", journeys))
    items = await _ranked(session_factory, plans)
    top = items[0].as_json()
    assert top["key"] == "pitfall:use:email"
    assert top["journeys"] == 10
    assert top["csat"] == {
        "group": 0.0,
        "group_n": 10,
        "rest": 100.0,
        "rest_n": 30,
        "shortfall": 1.0,
    }
    assert top["nps"] == {"group": None, "group_n": 0, "rest": None, "rest_n": 0, "shortfall": 0.0}
    # The second journeys (no feedback) are not in the base: 30 happy journeys, all returned.
    assert top["return_rate"] == {
        "group": 0.0,
        "group_n": 10,
        "rest": 100.0,
        "rest_n": 30,
        "shortfall": 1.0,
    }
    assert top["impact"] == 20.0
    assert top["filter"] == {"stage": "use", "channel": "email"}
    assert top["insight"] == {
        "origin": "pitfall",
        "stage": "use",
        "channel": "email",
        "metric": "csat",
    }
    # The use stage as a whole is no pitfall (CSAT 75 %): (use, email) is the only item.
    assert [i.key for i in items] == ["pitfall:use:email"]


async def test_the_api(
    client: Any,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GET /api/journey/fix-first: the same ranking over HTTP; agents get 403, bad input 422."""
    from argon2 import PasswordHasher

    from bot.domain import staff
    from bot.domain.enums import StaffRole
    from tests.staff_helpers import create_staff, sign_in

    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(staff, "password_hasher", cheap)
    await create_staff(session_factory)
    plans = data.generate(11, "use_email")
    await data.write(session_factory, plans)
    await sign_in(client, StaffRole.agent)
    response = await client.get("/api/journey/fix-first?from=2025-07-01&to=2026-03-31")
    assert response.status == 403
    await sign_in(client, StaffRole.cx_manager)
    response = await client.get("/api/journey/fix-first?from=2025-07-01&to=2026-03-31&tz=UTC")
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["min_answers"] == 10 and body["window_days"] == 90
    # The server's clock is now, not the fixed one: every journey is old enough to count.
    now = datetime.fromisoformat(body["as_of"])
    expected = data.reference(plans, data.reference_pitfalls(plans), as_of=now)
    assert [(i["key"], i["journeys"], i["impact"]) for i in body["items"]] == expected
    assert body["items"][0]["filter"] == {"stage": "use", "channel": "email"}
    bad = await client.get("/api/journey/fix-first?from=2025-07-01&to=2026-03-31&sort=x")
    assert bad.status == 422
