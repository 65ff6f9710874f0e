"""The dashboard's figures in Chromium: sample sizes, "too few answers", partial buckets, labels, the
explorer's time zone, ids, selection into an insight and product names; axe-core WCAG 2.1 AA
on every page (0 violations).

Data: tests/dashboard_data.py (March 2026) plus 12 CSAT answers in the week of March 9th, so
that week has enough answers (DASHBOARD_MIN_ANSWERS = 10) and the others do not.
Screenshots: /tmp/dash_*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.domain import staff
from bot.domain.enums import Channel, FeedbackKind, FeedbackSource, Stage
from bot.storage.models import Feedback, Lifecycle
from tests.axe_helper import axe_violations
from tests.dashboard_data import at, seed
from tests.live_app import Sessions, serve_app
from tests.loyalty_data import seed_loyalty
from tests.support_ops_data import seed_support_ops

pytestmark = pytest.mark.browser

MARCH = "from=2026-03-01&to=2026-03-31"
EXTRA_SCORES = [5, 5, 5, 5, 4, 4, 4, 4, 4, 4, 2, 1]  # 10 of 12 satisfied


async def _seed(sessions: Sessions) -> None:
    seeded = await seed(sessions)
    async with sessions() as db, db.begin():
        await staff.ensure_demo_users(db)
        lifecycle = await db.scalar(
            select(Lifecycle).where(Lifecycle.customer_id == seeded.customers["C1"]).limit(1)
        )
        assert lifecycle is not None
        for i, score in enumerate(EXTRA_SCORES):
            db.add(
                Feedback(
                    idempotency_key=f"extra{i}",
                    customer_id=lifecycle.customer_id,
                    lifecycle_id=lifecycle.id,
                    stage=Stage.use,
                    channel=Channel.website_chat,
                    source=FeedbackSource.chat_survey,
                    kind=FeedbackKind.csat,
                    score=score,
                    created_at=at(f"2026-03-{10 + i % 3:02d}T08:00:00"),
                )
            )


async def _seed_loyalty(sessions: Sessions) -> None:
    await seed_loyalty(sessions)
    async with sessions() as db, db.begin():
        await staff.ensure_demo_users(db)


@pytest.fixture(scope="module")
def loyalty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_app(tmp_path_factory.mktemp("loyalty21"), seed=_seed_loyalty) as live:
        yield live.url


async def _seed_support(sessions: Sessions) -> None:
    await seed_support_ops(sessions)
    async with sessions() as db, db.begin():
        await staff.ensure_demo_users(db)


@pytest.fixture(scope="module")
def support_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_app(tmp_path_factory.mktemp("support21"), seed=_seed_support) as live:
        yield live.url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_app(tmp_path_factory.mktemp("dash21"), seed=_seed) as live:
        yield live.url


def _page(browser: Any) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
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
    return context, page, errors


def _sign_in(page: Any, base: str, path: str) -> None:
    page.goto(f"{base}{path}")
    page.fill("#email", "cx@example.com")
    page.fill("#password", "demo-password-123")
    page.click("#signin")
    page.wait_for_url(f"{base}{path}")
    page.wait_for_selector("body[data-ready=true]")


def _go(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")


def _js(number: float) -> str:
    """A number as JavaScript prints it (40.0 -> "40")."""
    return str(int(number)) if float(number).is_integer() else str(number)


def _api(page: Any, base: str, path: str) -> Any:
    response = page.request.get(f"{base}/api/{path}")
    assert response.status == 200, response.text()
    return response.json()


def test_sample_sizes_too_few_answers_and_partial_weeks(browser: Any, server: str) -> None:
    context, page, errors = _page(browser)
    _sign_in(page, server, f"/dashboard/?{MARCH}&bucket=week")
    body = _api(page, server, f"metrics?{MARCH}&bucket=week")
    assert body["min_answers"] == 10
    # CSAT: 4 + 12 = 16 answers, 12 satisfied -> 75.0 %, Wilson 50.5..89.8.
    csat = body["current"]["csat"]
    assert (csat["responses"], csat["percent"], csat["interval"]) == (16, 75.0, [50.5, 89.8])
    card = page.locator("#kpi-csat")
    assert card.locator(".kpi__value").text_content() == "75"
    assert card.locator(".kpi__n").text_content() == "16 answers · 95 % interval 50.5 to 89.8"
    # NPS: 6 answers, too few.
    nps = page.locator("#kpi-nps")
    assert nps.locator(".kpi__value").text_content() == "Too few answers"
    assert nps.locator(".kpi__value").get_attribute("data-value") == "16.7"
    assert nps.locator(".kpi__n").text_content() == (
        "6 answers · fewer than 10: 16.7 is not reliable"
    )

    chart = page.evaluate(
        "() => { const c = Chart.getChart(document.getElementById('trend-chart'));"
        " return {labels: c.data.labels, shown: c.data.datasets[0].data,"
        " few: c.data.datasets[1].data, styles: c.data.datasets[0].pointStyle}; }"
    )
    weeks = [p["start"] for p in body["trend"]]
    assert chart["labels"] == weeks
    assert weeks == [
        "2026-02-23",
        "2026-03-02",
        "2026-03-09",
        "2026-03-16",
        "2026-03-23",
        "2026-03-30",
    ]
    # Only the week of March 9th (the 10th's 4, the 11th's 3 and the 12 added: 11 of 14
    # satisfied) is drawn as a figure; weeks with 1..9 answers are hollow "too few" points
    # (March 1st: 5; March 31st: 1); weeks without answers have no point and no line.
    week9 = body["trend"][2]["csat"]
    assert (week9["responses"], week9["percent"]) == (14, 78.6)
    assert chart["shown"] == [None, None, 78.6, None, None, None]
    assert chart["few"] == [100.0, None, None, None, None, 0.0]
    assert chart["styles"] == ["rectRot", "circle", "circle", "circle", "circle", "rectRot"]
    page.click(".trend-details summary")
    first = page.locator("#trend-table tr[data-start='2026-02-23'] td")
    assert [first.nth(i).text_content() for i in range(5)] == [
        "2026-02-23",
        "(100)",
        "1 answer",
        "",
        "too few answers; partial: starts before the chosen dates",
    ]
    middle = page.locator("#trend-table tr[data-start='2026-03-09'] td")
    assert [middle.nth(i).text_content() for i in range(5)] == [
        "2026-03-09",
        "78.6",
        "14 answers",
        "52.4 to 92.4",
        "",
    ]
    assert axe_violations(page) == []
    page.screenshot(path="/tmp/dash_overview.png", full_page=True)
    assert errors == []
    context.close()


def test_labels_on_breakdowns_journey_and_loyalty(browser: Any, server: str) -> None:
    context, page, errors = _page(browser)
    _sign_in(page, server, f"/dashboard/breakdowns?{MARCH}&group_by=channel")
    cells = page.locator("#breakdown-table tr[data-key] td:first-child").all_text_contents()
    assert "Website chat" in cells and "Call centre" in cells
    assert not any("_" in c for c in cells)
    chat = page.locator("#breakdown-table tr[data-key=website_chat] td")
    # website_chat: the March 1st CSAT 5 and the 12 added answers: 11 of 13 satisfied.
    assert chat.nth(2).text_content() == "84.6" and chat.nth(3).text_content() == "13"
    assert chat.nth(4).text_content() == "57.8\u201395.7"  # Wilson 95 % interval of 11 of 13
    email = page.locator("#breakdown-table tr[data-key=email] td")
    assert email.nth(2).text_content() == "too few"
    assert axe_violations(page) == []
    page.screenshot(path="/tmp/dash_breakdowns.png", full_page=True)

    _go(page, f"{server}/dashboard/breakdowns?{MARCH}&group_by=trigger")
    triggers = page.locator("#breakdown-table tr[data-key] td:first-child").all_text_contents()
    assert set(triggers) == {"No survey (unprompted)", "After delivery", "After a support case"}

    _go(page, f"{server}/dashboard/journey?{MARCH}")
    titles = page.locator(".journey__stage-link").all_text_contents()
    assert titles == ["Discovery", "Research", "Purchase", "Use", "Support"]
    use = page.locator(".journey__col[data-stage=use]")
    assert use.locator("[data-field=csat]").text_content() == "85.7"  # 12 of 14
    assert use.locator("[data-field=csat_interval]").text_content() == (
        "95 % interval 60.1 to 96 %"
    )
    support = page.locator(".journey__col[data-stage=support]")
    assert support.locator("[data-field=csat]").text_content() == "too few"
    assert support.locator("[data-field=csat]").get_attribute("data-value") == "0"
    assert support.locator("[data-field=csat_interval]").count() == 0  # too few: none shown
    sources = page.locator(".journey__sources .source").all_text_contents()
    assert any(s.startswith("Search engine") and "1 customer (" in s for s in sources)
    assert axe_violations(page) == []
    page.screenshot(path="/tmp/dash_journey.png", full_page=True)

    assert errors == []
    context.close()


def test_explorer_time_zone_ids_selection_and_product_names(browser: Any, server: str) -> None:
    context, page, errors = _page(browser)
    _sign_in(page, server, f"/dashboard/explorer?{MARCH}&tz=Europe/Berlin&kind=nps")
    rows = _api(page, server, f"feedback?{MARCH}&tz=Europe/Berlin&kind=nps&per_page=25")
    assert rows["total"] == 6
    first = rows["items"][0]
    line = page.locator(f"#feedback-table tr[data-id='{first['id']}'] td")
    assert line.nth(1).text_content() == str(first["id"])
    # 2026-03-14T10:00 UTC is 11:00 in Berlin (winter time until March 29th).
    assert first["created_at"].startswith("2026-03-14T10:00")
    assert line.nth(2).text_content() == "2026-03-14 11:00"
    assert page.locator("#feedback-table th").nth(2).text_content() == "When (Europe/Berlin)"
    assert (
        line.nth(3).text_content() == "Discovery" and line.nth(4).text_content() == "Social media"
    )
    assert page.locator("#explorer-summary").text_content() == "6 feedback rows"
    assert page.locator("#make-insight").is_hidden()
    ids = [str(item["id"]) for item in rows["items"][:2]]
    for item_id in ids:
        page.check(f"#feedback-table input[value='{item_id}']")
    assert page.locator("#selected-count").text_content() == "2 rows selected"
    assert axe_violations(page) == []
    page.screenshot(path="/tmp/dash_explorer.png", full_page=True)
    page.click("#make-insight")
    page.wait_for_url("**/dashboard/insights?**")
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#insight-origin").input_value() == "feedback"
    assert page.locator("#insight-feedback").input_value() == ", ".join(ids)
    assert page.locator("#insight-feedback").is_visible()
    # The explorer's time zone and dates came along.
    assert page.locator("#range-tz").input_value() == "Europe/Berlin"
    assert axe_violations(page) == []

    # Products by name: "beta jug" (any case) filters by SKU-B.
    _go(page, f"{server}/dashboard/explorer?{MARCH}")
    page.fill("input[name=product]", "beta jug")
    page.click("#explorer-form button[type=submit]")
    page.wait_for_function("() => location.search.includes('product=SKU-B')")
    page.wait_for_function(
        "() => document.getElementById('explorer-summary').textContent === '3 feedback rows'"
    )
    assert page.locator("input[name=product]").input_value() == "Beta jug"
    assert errors == []
    context.close()


def test_loyalty_bars_carry_their_n_and_too_few(browser: Any, loyalty_server: str) -> None:
    context, page, errors = _page(browser)
    _sign_in(page, loyalty_server, "/dashboard/loyalty?from=2026-01-01&to=2026-03-31&window=90")
    body = _api(page, loyalty_server, "loyalty?from=2026-01-01&to=2026-03-31&window=90")
    groups = body["return_rate"]["by_csat"]
    chart = page.evaluate(
        "() => { const c = Chart.getChart(document.getElementById('chart-by_csat'));"
        " return {labels: c.data.labels, values: c.data.datasets[0].data}; }"
    )
    assert [label[1] for label in chart["labels"]] == [f"n = {g['lifecycles']}" for g in groups]
    # Every CSAT band holds fewer than 10 lifecycles in this small history: no bar is drawn,
    # the table says "too few" beside the rate.
    assert max(g["lifecycles"] for g in groups) < 10
    assert chart["values"] == [None] * len(groups)
    satisfied = next(g for g in groups if g["key"] == "satisfied")
    cells = page.locator("[data-group=by_csat] tr[data-key=satisfied] td").all_text_contents()
    assert cells[1:4] == [
        str(satisfied["lifecycles"]),
        str(satisfied["returned"]),
        f"too few ({_js(satisfied['rate'])} %)",
    ]
    assert page.locator("#kpi-return .kpi__previous").text_content() == (
        "7 of 12 lifecycles were followed by another"
    )
    assert axe_violations(page) == []
    page.screenshot(path="/tmp/dash_loyalty.png", full_page=True)
    assert errors == []
    context.close()


def test_support_operations_page(browser: Any, support_server: str) -> None:
    context, page, errors = _page(browser)
    _sign_in(page, support_server, f"/dashboard/support?{MARCH}")
    body = _api(page, support_server, f"support?{MARCH}")
    assert page.locator("#kpi-escalations .kpi__value").text_content() == "5"
    assert page.locator("#kpi-first-reply .kpi__value").text_content() == "15 min"
    assert page.locator("#kpi-first-reply .kpi__n").text_content() == (
        "mean of 3 chats answered; 66.7 % (2 of 3) within 15 min"
    )
    assert page.locator("#kpi-resolution .kpi__value").text_content() == "20 h"
    total = body["total"]["sla_breaches"]
    assert page.locator("#kpi-breaches .kpi__value").text_content() == str(
        total["first_reply"] + total["resolution"]
    )
    reasons = page.locator("#support-reasons tr[data-key] td:first-child").all_text_contents()
    assert set(reasons) == {
        "Customer asked for a person",
        "Unhappy feedback (follow-up)",
        "Bot did not understand",
    }
    priorities = page.locator("#support-priorities tr[data-key] td:first-child")
    assert priorities.all_text_contents() == ["High", "Normal", "Low"]
    alice = page.locator(f"#support-agents tr[data-key='{body['agents'][0]['agent_id']}']")
    assert alice.locator("td").first.text_content() == "Alice"
    assert alice.locator("[data-field=reply]").text_content() == "7.5 min (n 2)"
    assert alice.locator("[data-field=csat]").text_content() == "too few (n 2)"
    assert alice.locator("[data-field=ces]").text_content() == "too few (n 1)"
    assert page.locator(".topbar__nav a[aria-current=page]").text_content() == "Support"
    assert axe_violations(page) == []
    page.screenshot(path="/tmp/dash_support.png", full_page=True)
    assert errors == []
    context.close()
