"""Fire-and-forget work started by a request (e.g. a live survey offer after a shop event).

The request answers at once; the task keeps a strong reference here (asyncio only keeps
weak ones) and is cancelled on shutdown. Failures are logged, never raised to anyone.

Also the periodic CX alerts round (`alerts_ctx`, bot/alerts.py): every
`ALERT_CHECK_SECONDS` (0: off) each web process detects, stores once, posts and digests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from typing import Any

from aiohttp import web
from aiohttp.helpers import ChainMapProxy

logger = logging.getLogger(__name__)

BACKGROUND_TASKS: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("background_tasks")
ALERTS_TASK: web.AppKey[asyncio.Task[None]] = web.AppKey("alerts_task")
# The alerts' clock (tests set a fixed one); default: the current UTC time.
ALERT_CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("alert_clock")


def spawn(app: web.Application | ChainMapProxy, work: Coroutine[Any, Any, Any], name: str) -> None:
    tasks = app[BACKGROUND_TASKS]
    task = asyncio.create_task(work, name=name)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    task.add_done_callback(_log_failure)


async def stop(task: asyncio.Task[Any]) -> None:
    """Cancel a long-running task of a cleanup_ctx and wait until it has ended."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("background task %s failed", task.get_name(), exc_info=task.exception())


async def background_tasks(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the task set lives as long as the app; leftovers are cancelled."""
    app[BACKGROUND_TASKS] = set()
    yield
    tasks: set[asyncio.Task[Any]] = app[BACKGROUND_TASKS]
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _alerts_forever(app: web.Application, every: int) -> None:
    from bot import alerts
    from bot.storage.models import utcnow
    from bot.web.keys import SESSIONS, SETTINGS

    clock = app.get(ALERT_CLOCK, utcnow)
    while True:
        await asyncio.sleep(every)  # the first round after one interval: start-up stays quick
        try:
            result = await alerts.run_once(app[SESSIONS], app[SETTINGS], clock())
            if result.new:
                logger.info("new CX alerts: %s", ", ".join(result.new))
        except Exception:  # a database or network hiccup must not end the task
            logger.exception("CX alerts round failed")


async def alerts_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the CX alerts round every ALERT_CHECK_SECONDS while the service runs."""
    from bot.web.keys import SETTINGS

    every = app[SETTINGS].alert_check_seconds
    if every <= 0:
        yield
        return
    app[ALERTS_TASK] = asyncio.create_task(_alerts_forever(app, every), name="cx-alerts")
    yield
    await stop(app[ALERTS_TASK])
