"""CX alerts (issue #21): detection on two generated data sets against a plain-Python
reference, each alert once, the Slack-compatible webhook against a real local aiohttp
server and the daily digest against the tests' SMTP server; fixed clock, both databases."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import alerts as alert_service
from bot.config import Settings
from bot.domain import alerts
from bot.storage.models import Alert
from tests import alert_data as data
from tests import fix_first_data
from tests.smtp_server import SmtpSink, smtp_server, smtp_settings, text_of  # noqa: F401

WEEK = data.ALERT_WEEK.isoformat()
PLANTED = {
    "csat_email_delivery": {
        f"metric_band:csat:{WEEK}",
        f"new_pitfall:use:email:csat:{WEEK}",
        f"theme_spike:delivery:{WEEK}",
    },
    "nps_callcenter_billing": {
        f"metric_band:nps:{WEEK}",
        f"new_pitfall:support:call_center:nps:{WEEK}",
        f"theme_spike:billing:{WEEK}",
    },
}


def _window(
    plans: list[fix_first_data.CustomerPlan], start: date, end: date
) -> list[fix_first_data.CustomerPlan]:
    found = []
    for plan in plans:
        journeys = [
            fix_first_data.JourneyPlan(
                j.opened_at, j.stage, [r for r in j.rows if start <= r.created_at.date() <= end]
            )
            for j in plan.journeys
        ]
        found.append(fix_first_data.CustomerPlan(plan.external_id, journeys))
    return found


def _expected(plans: list[fix_first_data.CustomerPlan]) -> set[str]:
    keys = data.expected_keys(plans)
    sunday = data.ALERT_WEEK + timedelta(days=6)
    now = fix_first_data.reference_pitfalls(_window(plans, data.PITFALL_FROM, sunday))
    before = fix_first_data.reference_pitfalls(
        _window(
            plans, data.PITFALL_FROM - timedelta(weeks=4), data.PITFALL_FROM - timedelta(days=1)
        )
    )
    for (stage, channel), metrics in now.items():
        for metric in metrics:
            if metric not in before.get((stage, channel), []):
                keys.add(f"new_pitfall:{stage}:{channel or '-'}:{metric}:{WEEK}")
    return keys


@pytest.mark.parametrize(
    ("seed", "planted"), [(5, "csat_email_delivery"), (8, "nps_callcenter_billing")]
)
async def test_detection_matches_the_reference(
    session_factory: async_sessionmaker[AsyncSession], seed: int, planted: str
) -> None:
    plans = data.generate(seed, planted)
    await fix_first_data.write(session_factory, plans)
    async with session_factory() as db:
        found = await alerts.detect(db, data.NOW, alerts.AlertRules())
    keys = {a.key for a in found}
    assert keys == _expected(plans)
    assert PLANTED[planted] <= keys
    assert len(keys) == len(found)  # one alert per key


async def test_metric_band_figures(session_factory: async_sessionmaker[AsyncSession]) -> None:
    plans = data.generate(5, "csat_email_delivery")
    await fix_first_data.write(session_factory, plans)
    async with session_factory() as db:
        [csat] = [
            a
            for a in await alerts.metric_band_alerts(db, data.NOW, alerts.AlertRules())
            if a.details["metric"] == "csat"
        ]
    rows = data.rows_of(plans)
    week = [r for r in rows if data._week(r.created_at) == data.ALERT_WEEK]
    value, n = data._values(week)["csat"]
    assert csat.details["value"] == value and csat.details["answers"] == n == 40
    assert csat.details["worse"] is True and csat.details["baseline_weeks"] == 8
    assert csat.details["low"] <= csat.details["mean"] <= csat.details["high"]
    assert value is not None and value < csat.details["low"]
    assert csat.path == "/dashboard/?from=2026-01-26&to=2026-03-29&tz=UTC&bucket=week"


@dataclass
class Hook:
    """A local Slack-like incoming webhook: records the JSON bodies, fails when told to."""

    bodies: list[dict[str, object]] = field(default_factory=list)
    fail_next: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.text())
        assert request.content_type == "application/json"
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=500, text="oops")
        self.bodies.append(body)
        return web.Response(text="ok")


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    found = Hook()
    app = web.Application()
    app.router.add_post("/hooks/cx", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    found.url = f"http://127.0.0.1:{port}/hooks/cx"
    yield found
    await runner.cleanup()


async def test_each_alert_once_to_the_webhook_and_the_digest(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    hook: Hook,
    smtp_server: SmtpSink,  # noqa: F811
) -> None:
    plans = data.generate(5, "csat_email_delivery")
    await fix_first_data.write(session_factory, plans)
    cfg = smtp_settings(
        smtp_server,
        replace(settings, public_url="https://cx.example.com"),
        alert_webhook_url=hook.url,
        alert_digest_to="cx-team@example.com",
    )
    hook.fail_next = 1  # the first post fails: that alert stays pending for the next round
    first = await alert_service.run_once(session_factory, cfg, data.NOW)
    expected = _expected(plans)
    assert set(first.new) == expected
    assert first.posted == len(expected) - 1 and first.digested == len(expected)
    async with session_factory() as db:
        stored = list(await db.scalars(select(Alert).order_by(Alert.id)))
    assert {a.key for a in stored} == expected
    assert [a.webhook_sent_at is None for a in stored] == [True] + [False] * (len(stored) - 1)
    texts = [b["text"] for b in hook.bodies]
    assert all(set(b) == {"text"} for b in hook.bodies)
    assert texts == [alert_service.slack_text(a) for a in stored[1:]]
    csat = next(a for a in stored if a.key == f"metric_band:csat:{WEEK}")
    assert (
        csat.link
        == "https://cx.example.com/dashboard/?from=2026-01-26&to=2026-03-29&tz=UTC&bucket=week"
    )
    assert alert_service.slack_text(csat) == f"{csat.text} <{csat.link}|Open the dashboard>"

    [mail] = await smtp_server.wait(1)
    assert mail["To"] == "cx-team@example.com"
    assert mail["Subject"] == f"CX alerts, 2026-04-01: {len(expected)} new"
    body = text_of(mail)
    for alert in stored:
        assert f"* {alert.text}\n  {alert.link}\n" in body

    # An hour later: nothing new is stored or emailed; the failed post goes out now.
    second = await alert_service.run_once(session_factory, cfg, data.NOW + timedelta(hours=1))
    assert (second.new, second.posted, second.digested) == ([], 1, 0)
    assert hook.bodies[-1]["text"] == alert_service.slack_text(stored[0])
    # The next day: still nothing to send (every alert went into yesterday's digest).
    third = await alert_service.run_once(session_factory, cfg, data.NOW + timedelta(days=1))
    assert (third.new, third.posted, third.digested) == ([], 0, 0)
    assert len(hook.bodies) == len(expected) and len(smtp_server.snapshot()) == 1


async def test_digest_waits_for_its_hour(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    smtp_server: SmtpSink,  # noqa: F811
) -> None:
    await fix_first_data.write(session_factory, data.generate(8, "nps_callcenter_billing"))
    cfg = smtp_settings(smtp_server, settings, alert_digest_to="cx@example.com")
    early = datetime(2026, 4, 1, 6, 59, tzinfo=data.NOW.tzinfo)
    result = await alert_service.run_once(session_factory, cfg, early)
    assert result.new and result.digested == 0 and smtp_server.snapshot() == []
    later = await alert_service.run_once(session_factory, cfg, early + timedelta(minutes=1))
    assert later.new == [] and later.digested == len(result.new)
    assert len(await smtp_server.wait(1)) == 1


async def test_the_web_service_runs_rounds_in_the_background(
    session_factory: async_sessionmaker[AsyncSession], settings: Settings, hook: Hook
) -> None:
    """alerts_ctx (bot/web/background.py) on an app with the fixed clock: a round a second."""
    import asyncio

    from bot.web.background import ALERT_CLOCK, alerts_ctx
    from bot.web.keys import SESSIONS, SETTINGS

    plans = data.generate(8, "nps_callcenter_billing")
    await fix_first_data.write(session_factory, plans)
    app = web.Application()
    app[SETTINGS] = replace(settings, alert_check_seconds=1, alert_webhook_url=hook.url)
    app[SESSIONS] = session_factory
    app[ALERT_CLOCK] = lambda: data.NOW
    ctx = alerts_ctx(app)
    await ctx.__anext__()
    try:
        expected = _expected(plans)
        for _ in range(100):
            if len(hook.bodies) >= len(expected):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # at least one more round: nothing is posted twice
    finally:
        with pytest.raises(StopAsyncIteration):
            await ctx.__anext__()
    async with session_factory() as db:
        stored = {a.key for a in await db.scalars(select(Alert))}
    assert stored == expected
    assert len(hook.bodies) == len(expected)


async def test_the_command(
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """`python -m bot alerts --now …` prints the new alerts; a second run finds none."""
    import asyncio

    from bot import cli

    plans = data.generate(5, "csat_email_delivery")
    await fix_first_data.write(session_factory, plans)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("ALERT_DIGEST_TO", raising=False)
    # cli.main runs its own event loop: in a thread, as from a shell.
    assert await asyncio.to_thread(cli.main, ["alerts", "--now", "2026-04-01T09:00:00"]) == 0
    out = capsys.readouterr().out.splitlines()
    expected = _expected(plans)
    assert sorted(out[:-1]) == sorted(f"new: {key}" for key in expected)
    assert out[-1] == f"{len(expected)} new alerts; 0 posted to the webhook; 0 in the digest."
    assert await asyncio.to_thread(cli.main, ["alerts", "--now", "2026-04-01T10:00:00"]) == 0
    assert capsys.readouterr().out == "0 new alerts; 0 posted to the webhook; 0 in the digest.\n"
