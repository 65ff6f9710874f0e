"""Fire-and-forget work started by a request (e.g. a live survey offer after a shop event).

The request answers at once; the task keeps a strong reference here (asyncio only keeps
weak ones) and is cancelled on shutdown. Failures are logged, never raised to anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiohttp import web
from aiohttp.helpers import ChainMapProxy

logger = logging.getLogger(__name__)

BACKGROUND_TASKS: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("background_tasks")


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
