"""The CX dashboard in Chromium on demo data: sign-in round trip, charts, journey map, pitfall.

Runs its own web service (tests/live_app.py) on a free port with a fresh SQLite demo database.
Screenshots: the test's tmp_path and var/results/screenshots/dashboard-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.config import PROJECT_ROOT
from bot.demo import load_demo_data
from bot.domain import staff
from tests.live_app import Sessions, serve_app

pytestmark = pytest.mark.browser

SCREENSHOTS = PROJECT_ROOT / "var" / "results" / "screenshots"
TODAY = date.today()
RANGE = f"from={(TODAY - timedelta(days=364)).isoformat()}&to={TODAY.isoformat()}&tz=UTC"


async def _seed(sessions: Sessions) -> None:
    await load_demo_data(sessions)
    async with sessions() as session, session.begin():
        await staff.ensure_demo_users(session)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_app(tmp_path_factory.mktemp("dash"), seed=_seed) as live:
        yield live.url


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)


def _sign_in(page: Any, base: str, path: str) -> None:
    page.goto(f"{base}{path}")
    assert "/console/login?next=" in page.url  # signed out: sent to the sign-in page
    page.fill("#email", "cx@example.com")
    page.fill("#password", "demo-password-123")
    page.click("#signin")
    page.wait_for_url(f"{base}{path}")
    page.wait_for_selector("body[data-ready=true]")


def _number(text: str | None) -> float | None:
    return None if text in (None, "", "–") else float(text)  # JS prints 40.0 as "40"


def _api(page: Any, base: str, path: str) -> Any:
    response = page.request.get(f"{base}/api/{path}")
    assert response.status == 200, response.text()
    return response.json()


def test_dashboard_renders_the_apis_numbers_and_a_pitfall_opens_its_comments(
    browser: Any, server: str, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Console errors other than expected HTTP statuses (the sign-in page's 401 probe,
    # the absent favicon) are failures too.
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )

    # Journey map first: the sign-in page brings us back to it (?next=).
    _sign_in(page, server, f"/dashboard/journey?{RANGE}")
    journey = _api(page, server, f"journey?{RANGE}")
    for stage in journey["stages"]:
        column = page.locator(f".journey__col[data-stage={stage['stage']}]")
        assert column.locator("[data-field=customers]").text_content() == str(stage["customers"])
        assert column.locator("[data-field=volume]").text_content() == str(stage["volume"])
        csat = stage["csat"]["percent"]
        # The figure itself is in data-value; its text reads "too few" below min_answers.
        assert _number(column.locator("[data-field=csat]").get_attribute("data-value")) == csat
        assert ("is-pitfall" in (column.get_attribute("class") or "")) == bool(stage["pitfalls"])
    sources = page.locator(".journey__sources .source")
    assert sources.count() == len(journey["sources"])
    pitfalls = page.locator("#pitfall-list .pitfall")
    assert pitfalls.count() == len(journey["pitfalls"]) > 0
    _shot(page, tmp_path, "journey")

    # The first pitfall opens the comment explorer with its filter; beside it, a link
    # starts an insight from it on the insight board.
    pitfall = journey["pitfalls"][0]
    insight_link = page.locator("#pitfall-list .pitfall__insight").first.get_attribute("href")
    assert insight_link == "insights?" + urlencode(
        {
            "origin": "pitfall",
            "stage": pitfall["stage"],
            "channel": pitfall["channel"] or "",
            "metric": pitfall["metric"],
        }
    )
    pitfalls.first.click()
    page.wait_for_url("**/dashboard/explorer?**")
    page.wait_for_selector("body[data-ready=true]")
    assert f"stage={pitfall['stage']}" in page.url
    query = page.url.split("?", 1)[1]
    rows = _api(page, server, f"feedback?{query}")
    assert rows["total"] > 0
    summary = page.locator("#explorer-summary")
    assert summary.get_attribute("data-total") == str(rows["total"])
    shown = page.locator("#feedback-table tr[data-id]")
    assert shown.count() == min(25, rows["total"])
    assert shown.first.get_attribute("data-id") == str(rows["items"][0]["id"])
    assert page.locator("select[name=stage]").input_value() == pitfall["stage"]
    _shot(page, tmp_path, "explorer")

    # Overview: the KPI cards and the trend chart hold the API's numbers.
    page.goto(f"{server}/dashboard/?{RANGE}&bucket=month")
    page.wait_for_selector("body[data-ready=true]")
    metrics = _api(page, server, f"metrics?{RANGE}&bucket=month")
    csat = page.locator("#kpi-csat .kpi__value").get_attribute("data-value")
    assert _number(csat) == metrics["current"]["csat"]["percent"]
    assert page.locator("#kpi-volume .kpi__value").text_content() == str(
        metrics["current"]["volume"]
    )
    chart = page.evaluate(
        "() => { const c = Chart.getChart(document.getElementById('trend-chart'));"
        " return {labels: c.data.labels, values: c.data.datasets[0].data}; }"
    )
    assert chart["labels"] == [p["start"] for p in metrics["trend"]]
    # Points on too few answers are left out of the line (drawn hollow by a second dataset).
    assert chart["values"] == [
        None if p["csat"]["too_few"] else p["csat"]["percent"] for p in metrics["trend"]
    ]
    _shot(page, tmp_path, "overview")

    # Breakdowns: one table row and one bar per stage.
    page.goto(f"{server}/dashboard/breakdowns?{RANGE}&group_by=stage")
    page.wait_for_selector("body[data-ready=true]")
    groups = _api(page, server, f"metrics?{RANGE}&bucket=none&group_by=stage")["breakdown"][
        "groups"
    ]
    assert page.locator("#breakdown-table tr[data-key]").count() == len(groups)
    bars = page.evaluate(
        "() => Chart.getChart(document.getElementById('breakdown-chart')).data.datasets[0].data"
    )
    assert sorted(bars) == sorted(g["volume"] for g in groups)
    _shot(page, tmp_path, "breakdowns")
    assert errors == []
    context.close()


def test_agents_get_a_403_page(browser: Any, server: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server}/console/login")
    page.fill("#email", "agent@example.com")
    page.fill("#password", "demo-password-123")
    page.click("#signin")
    page.wait_for_url(f"{server}/console/")
    response = page.goto(f"{server}/dashboard/")
    assert response is not None and response.status == 403
    assert "Not allowed" in page.content()
    context.close()
