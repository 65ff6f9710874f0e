"""The insight board in Chromium: create an insight from a journey pitfall, walk it to
applied and read the before/after figures; the loyalty page shows the API's numbers.

Runs its own web service (tests/live_app.py) on a free port with a fresh SQLite database holding a
hand-made support-stage CSAT history around a change applied ten days ago:

* before (15 days ago): csat 1, 2, 2, 3, 4, 5 at stage support -> CSAT 33.3 % (a pitfall:
  below 60 % with at least 5 answers);
* after (7 days ago): csat 4, 5, 5, 4, 2 -> CSAT 80.0 %.

Screenshots: the test's tmp_path and var/results/screenshots/insights-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.config import PROJECT_ROOT
from bot.domain import staff
from bot.domain.enums import (
    AcquisitionSource,
    Channel,
    FeedbackKind,
    FeedbackSource,
    LifecycleKind,
    OrderStatus,
    Stage,
)
from bot.storage.models import Customer, Feedback, Lifecycle, Order
from tests.live_app import Sessions, serve_app

pytestmark = pytest.mark.browser

SCREENSHOTS = PROJECT_ROOT / "var" / "results" / "screenshots"
TODAY = datetime.now(timezone.utc).date()
APPLIED = TODAY - timedelta(days=10)
APPLIED_AT = datetime.combine(APPLIED, time(0), timezone.utc)
BEFORE = [1, 2, 2, 3, 4, 5]
AFTER = [4, 5, 5, 4, 2]
RANGE = f"from={(TODAY - timedelta(days=30)).isoformat()}&to={(APPLIED - timedelta(days=1)).isoformat()}&tz=UTC"


async def _seed(sessions: Sessions) -> None:
    async with sessions() as db, db.begin():
        await staff.ensure_demo_users(db)
        customer = Customer(
            external_id="B1", name="Bea", acquisition_source=AcquisitionSource.search
        )
        db.add(customer)
        await db.flush()
        scores = [(s, APPLIED_AT - timedelta(days=5)) for s in BEFORE] + [
            (s, APPLIED_AT + timedelta(days=3)) for s in AFTER
        ]
        for n, (score, when) in enumerate(scores):
            order = Order(
                number=f"B{n:04d}",
                customer_id=customer.id,
                status=OrderStatus.returned,
                total=Decimal("10.00"),
                shipping_address="x",
                placed_at=when - timedelta(days=3),
            )
            db.add(order)
            await db.flush()
            lifecycle = Lifecycle(
                customer_id=customer.id,
                kind=LifecycleKind.one_time,
                stage=Stage.support,
                opened_at=when - timedelta(days=3),
                order_id=order.id,
            )
            db.add(lifecycle)
            await db.flush()
            db.add(
                Feedback(
                    idempotency_key=f"browser-{n}",
                    customer_id=customer.id,
                    lifecycle_id=lifecycle.id,
                    stage=Stage.support,
                    channel=Channel.website_chat,
                    source=FeedbackSource.chat_survey,
                    kind=FeedbackKind.csat,
                    score=score,
                    created_at=when + timedelta(minutes=n),
                )
            )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # six answers make the pitfall: the screen's "too few" bar lowered to match (a pitfall
    # needs as many answers as the dashboard shows a figure for)
    with serve_app(
        tmp_path_factory.mktemp("insights"), seed=_seed, dashboard_min_answers=5
    ) as live:
        yield live.url


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    page.screenshot(path=str(SCREENSHOTS / f"insights-{name}.png"), full_page=True)


def _watch_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    return errors


def _sign_in(page: Any, base: str, path: str) -> None:
    page.goto(f"{base}{path}")
    assert "/console/login?next=" in page.url
    page.fill("#email", "cx@example.com")
    page.fill("#password", "demo-password-123")
    page.click("#signin")
    page.wait_for_url(f"{base}{path}")
    page.wait_for_selector("body[data-ready=true]")


def test_insight_from_a_pitfall_is_applied_and_shows_before_and_after(
    browser: Any, server: str, tmp_path: Path
) -> None:
    page = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
    errors = _watch_errors(page)
    _sign_in(page, server, f"/dashboard/insights?{RANGE}")

    pitfall = page.locator("#insight-pitfall option", has_text="Support — CSAT 33.3 %")
    assert pitfall.count() == 1
    page.select_option("#insight-pitfall", value=pitfall.get_attribute("value"))
    page.fill("#insight-title", "Support answers too slowly")
    page.select_option("#insight-team", "support")
    page.fill(
        "#insight-message",
        "You told us our support was slow; we now answer every chat within two minutes.",
    )
    page.get_by_role("button", name="Create insight").click()

    new = page.locator(".board__col[data-status=new] .card", has_text="Support answers too slowly")
    new.wait_for(timeout=10_000)
    # Linked: the pitfall's low CSATs (<= 3) of the range: 1, 2, 2, 3.
    assert (
        new.locator("[data-field=linked]").text_content().startswith("4 comments from 1 customer ")
    )
    _shot(page, tmp_path, "created")

    new.get_by_role("button", name="Accept").click()
    accepted = page.locator(".board__col[data-status=accepted] .card")
    accepted.get_by_role("button", name="Start").click()
    started = page.locator(".board__col[data-status=in_progress] .card")
    started.get_by_role("button", name="Mark applied").click()
    started.locator("input[name=applied_at]").fill(APPLIED.isoformat())
    started.locator("input[name=notify]").check()
    started.get_by_role("button", name="Confirm applied").click()

    applied = page.locator(".board__col[data-status=applied] .card")
    applied.wait_for(timeout=10_000)
    # Applied ten days ago: fewer than INSIGHT_MIN_WINDOW_DAYS (14) each side, so the
    # figures carry their n but no change and no verdict yet (issue #21).
    csat = applied.locator(".comparison tr[data-metric=csat] td")
    assert csat.all_text_contents() == ["CSAT %", "33.3 (n 6)", "80 (n 5)"]
    assert applied.locator(".comparison th").all_text_contents() == ["", "before", "after"]
    ready = (APPLIED + timedelta(days=14)).isoformat()
    # Ten days and some hours since midnight of APPLIED: 10, or 11 once the date input's
    # midnight and the clock straddle a day boundary (the test failed at 23:54 UTC).
    assert re.fullmatch(
        rf"Too early to tell: 1[01] of the 14 days each side have passed; the comparison is "
        rf"ready on {ready}\.",
        applied.locator(".comparison__note").text_content() or "",
    )
    volume = applied.locator(".comparison tr[data-metric=volume] td")
    assert [volume.nth(i).text_content() for i in range(3)] == ["Volume", "6", "5"]
    assert "Told to 0 of 1 customer:" in applied.text_content()
    _shot(page, tmp_path, "applied")

    board = page.request.get(f"{server}/api/insights").json()["insights"]
    assert [(i["status"], i["applied_at"]) for i in board] == [("applied", APPLIED_AT.isoformat())]
    assert board[0]["comparison"]["after"]["csat"]["percent"] == 80.0
    assert errors == []


def test_loyalty_page_shows_the_apis_figures(browser: Any, server: str, tmp_path: Path) -> None:
    page = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
    errors = _watch_errors(page)
    _sign_in(page, server, "/dashboard/loyalty")
    data = page.request.get(f"{server}/api/loyalty").json()
    # Eleven orders of one customer, her first one 18 days ago: too recent to judge a
    # 90-day repeat (pending, no rate yet).
    assert data["repeat"] == {"customers": 0, "repeaters": 0, "rate": None, "pending": 1}
    assert page.locator("#kpi-repeat .kpi__value").text_content() == "–"
    assert "1 pending" in page.locator("#kpi-repeat").text_content()
    per_customer = page.locator("#kpi-lifecycles .kpi__value").text_content()
    assert (per_customer, data["lifecycles"]["per_customer"]) == ("11", 11.0)  # JS prints 11
    rows = page.locator("#cohort-table tr[data-month]")
    assert (
        rows.count() == len(page.request.get(f"{server}/api/loyalty/cohorts").json()["cohorts"]) + 1
    )
    assert page.locator("#chart-by_csat").is_visible()
    _shot(page, tmp_path, "loyalty")
    assert errors == []
