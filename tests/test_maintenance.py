"""The web service's lifecycle sweep (bot/web/maintenance.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain.enums import OrderStatus
from bot.storage.models import Lifecycle
from bot.web.app import create_app
from bot.web.maintenance import SWEEP_TASK
from tests import factories


async def _close_reason(sessions: async_sessionmaker[AsyncSession], lifecycle_id: int) -> Any:
    async with sessions() as session:
        return await session.scalar(
            select(Lifecycle.close_reason).where(Lifecycle.id == lifecycle_id)
        )


async def test_the_web_service_closes_completed_lifecycles_in_the_background(
    engine: Any,
    settings: Settings,
    session: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    lifecycle = await factories.order_lifecycle(session, 1, "A50001", OrderStatus.delivered, 31)
    await session.commit()
    app = create_app(replace(settings, lifecycle_sweep_seconds=1, return_window_days=30))

    async with TestClient(TestServer(app)):
        for _ in range(50):
            if await _close_reason(session_factory, lifecycle.id) == "completed":
                break
            await asyncio.sleep(0.1)
        assert await _close_reason(session_factory, lifecycle.id) == "completed"
        assert not app[SWEEP_TASK].done()
    assert app[SWEEP_TASK].cancelled()


async def test_a_sweep_interval_of_zero_turns_the_sweep_off(
    engine: Any, settings: Settings, session: AsyncSession
) -> None:
    await factories.order_lifecycle(session, 1, "A50001", OrderStatus.delivered, 31)
    await session.commit()
    app = create_app(replace(settings, lifecycle_sweep_seconds=0))

    async with TestClient(TestServer(app)):
        assert SWEEP_TASK not in app
