"""Issue #23 in the browser: the comment explorer links an imported review to its public
page and names a reviewer who is not a customer; the journey map shows the unattributed
column; both pages pass axe (WCAG 2.1 AA) with 0 violations."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.domain import staff, web_reviews
from tests.axe_helper import axe_violations
from tests.live_app import Sessions, serve_app

pytestmark = pytest.mark.browser

DATA = Path(__file__).parent / "data" / "imports"
RANGE = "from=2026-11-01&to=2026-11-30&tz=UTC"


async def _seed(sessions: Sessions) -> None:
    async with sessions() as session, session.begin():
        await staff.ensure_demo_users(session)
    for name, file in (("social", "social.csv"), ("trustpilot", "trustpilot.csv")):
        fmt = web_reviews.get_format(name)
        raw = io.BytesIO((DATA / file).read_bytes())
        await web_reviews.import_reviews(sessions, web_reviews.read_reviews(raw, fmt), due_hours=48)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_app(tmp_path_factory.mktemp("web-reviews"), seed=_seed) as live:
        yield live.url


def test_explorer_links_reviews_to_their_source(browser: Any, server: str) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    path = f"/dashboard/explorer?{RANGE}&channel=social"
    page.goto(f"{server}{path}")
    page.fill("#email", "cx@example.com")
    page.fill("#password", "demo-password-123")
    page.click("#signin")
    page.wait_for_url(f"{server}{path}")
    page.wait_for_selector("body[data-ready=true]")

    rows = page.locator("#feedback-table tr[data-id]")
    assert rows.count() == 3
    links = page.locator("#feedback-table a.source-link")
    assert sorted(links.evaluate_all("els => els.map(a => a.getAttribute('href'))")) == [
        "https://www.instagram.com/p/Cx1/",
        "https://x.com/someone/status/1",
        "https://x.com/someone/status/2",
    ]
    first = links.first
    assert first.get_attribute("target") == "_blank"
    assert first.get_attribute("rel") == "noopener noreferrer"
    assert "source on " in (first.text_content() or "")
    # No customer link for a reviewer who is not a customer; the reviewer is named instead.
    assert page.locator("#feedback-table a", has_text="customer").count() == 0
    assert page.locator("#feedback-table td", has_text="Reviewer @angry_dan").count() == 1
    assert axe_violations(page) == []

    page.goto(f"{server}/dashboard/journey?{RANGE}")
    page.wait_for_selector("body[data-ready=true]")
    column = page.locator(".journey__col[data-stage=unattributed]")
    assert column.locator("[data-field=volume]").text_content() == "9"  # 3 social + 6 Trustpilot
    cells = column.locator("button.cell")  # one per channel
    assert cells.evaluate_all("bs => bs.map(b => b.dataset.channel)") == ["review_site", "social"]
    assert "6 feedback" in (cells.nth(0).text_content() or "")
    assert "3 feedback" in (cells.nth(1).text_content() or "")
    assert axe_violations(page) == []

    # Breakdowns by channel: the share of voice per month, web channels included.
    page.goto(f"{server}/dashboard/breakdowns?{RANGE}&group_by=channel")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#voice-table tr[data-start]")
    shares = page.locator("#voice-table tr[data-start='2026-11-01'] td[data-channel]")
    assert shares.evaluate_all("tds => tds.map(td => [td.dataset.channel, td.dataset.share])") == [
        ["review_site", "66.7"],
        ["social", "33.3"],
    ]
    assert axe_violations(page) == []
    assert errors == []
    context.close()
