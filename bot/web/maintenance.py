"""Housekeeping that nobody's request triggers: closing completed purchases' lifecycles.

A delivered purchase's lifecycle closes once its return window has passed without support
(SPEC §3); no event says when that happens, so every web process sweeps for them every
`lifecycle_sweep_seconds` (0 turns it off; `python -m bot close-lifecycles` does one sweep,
for cron). Two replicas sweeping at once is harmless: both close the same rows with the
same time and reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import lifecycle as lifecycles
from bot.storage.models import utcnow
from bot.web.background import stop
from bot.web.keys import SESSIONS, SETTINGS

logger = logging.getLogger(__name__)
SWEEP_TASK = web.AppKey("lifecycle_sweep_task", asyncio.Task)


async def _sweep_forever(
    sessions: async_sessionmaker[AsyncSession], return_window: timedelta, every: int
) -> None:
    while True:
        await asyncio.sleep(every)  # first after one interval: starting up stays quick
        try:
            closed = await lifecycles.close_all_completed(sessions, utcnow(), return_window)
            if closed:
                logger.info("closed %d completed lifecycles", closed)
        except Exception:  # a database hiccup must not end the task
            logger.exception("lifecycle sweep failed")


async def lifecycle_sweep_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: sweep in the background while the service runs."""
    settings = app[SETTINGS]
    if settings.lifecycle_sweep_seconds <= 0:
        yield
        return
    app[SWEEP_TASK] = asyncio.create_task(
        _sweep_forever(
            app[SESSIONS],
            timedelta(days=settings.return_window_days),
            settings.lifecycle_sweep_seconds,
        )
    )
    yield
    await stop(app[SWEEP_TASK])
