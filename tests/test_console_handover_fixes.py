"""The staff console and hand-over bugs a tester found (2026-12-07): presence while a console
page is open, what the customer hears after Resolve, the live status the widget hears."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import staff
from bot.storage.models import StaffUser, utcnow
from bot.web import console
from bot.web.hub import StaffHub
from tests.test_console import _login, _setup

Client = TestClient[web.Request, web.Application]


async def _seen_long_ago(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """As if the page had been open for five minutes without loading anything."""
    async with session_factory() as db, db.begin():
        await db.execute(update(StaffUser).values(last_seen_at=utcnow() - timedelta(minutes=5)))


async def _online(session_factory: async_sessionmaker[AsyncSession]) -> list[str]:
    async with session_factory() as db:
        return [u.email for u in await staff.online_staff(db)]


async def test_an_open_console_keeps_its_agent_online_and_a_closed_one_goes_stale(
    client: Client,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bug 1: only page loads refreshed presence, so an agent looking at the queue counted
    as offline after 60 s and customers were told the team was offline."""
    monkeypatch.setattr(console, "PRESENCE_TOUCH_SECONDS", 0.1)
    await _setup(session_factory)
    await _login(client, "sam@example.com")
    queue = await client.ws_connect("/console/ws")  # the queue page's live connection
    second_tab = await client.ws_connect("/console/ws")
    await _seen_long_ago(session_factory)
    assert await _online(session_factory) == []
    await asyncio.sleep(0.35)
    assert await _online(session_factory) == ["sam@example.com"]

    await queue.close()
    await second_tab.close()
    await asyncio.sleep(0.1)  # the server sees the pages closed
    await _seen_long_ago(session_factory)
    await asyncio.sleep(0.35)
    assert await _online(session_factory) == []


def test_several_tabs_of_one_agent_refresh_presence_once_per_period() -> None:
    hub = StaffHub()
    assert [hub.presence_due(7, t, 18.0) for t in (100.0, 101.0, 117.9, 118.0)] == [
        True,
        False,
        False,
        True,
    ]
    assert hub.presence_due(8, 101.0, 18.0) is True
    assert staff.PRESENCE_WINDOW.total_seconds() / 2 > console.PRESENCE_TOUCH_SECONDS
