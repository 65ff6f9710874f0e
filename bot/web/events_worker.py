"""The shop events queue inside the web service (SPEC §6, docs/events.md).

* `EventsIngest` — group commit for `POST /api/events`: requests that arrive while one
  batch is being written wait for the next; each batch is one `INSERT … ON CONFLICT DO
  NOTHING` on an autocommit connection the writer keeps while requests keep coming
  (`shop_events.accept_on`). Nothing waits on a timer: a lone event is written at once.
* `EventsWorker` — applies pending events (`shop_events.apply_pending`) when this process
  accepted one, every `POLL_SECONDS` (events of a crashed or restarted process, or another
  replica's) and once at start-up, with `EVENTS_APPLIERS` batches at once (PostgreSQL; one
  on SQLite). Every web replica runs one; all their batches are applied in parallel and a
  customer's events stay in order (the claim). After an event that
  scheduled a survey is applied, the live offer to a connected customer is started
  (`offer_after_event`) as a background task.
* `drain(app)` — wait until the queue is empty (tests and scripts).

On shutdown the worker finishes the batches it is applying (up to `STOP_SECONDS`) and takes
no new ones; pending rows stay for the next start or another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from bot.domain import shop_events
from bot.domain.enums import ShopEventStatus
from bot.storage.db import STORAGE_ERRORS
from bot.web.background import spawn, stop
from bot.web.keys import ENGINE, SESSIONS, SETTINGS
from bot.web.ops import METRICS
from bot.web.proactive import offer_after_event

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
MAX_INGEST_BATCH = 256
# After a database error the worker waits this long before it tries again.
ERROR_PAUSE_SECONDS = 1.0
CONFLICT_PAUSE_SECONDS = 0.02
# On shutdown the worker finishes the batches it is applying for at most this long.
STOP_SECONDS = 5.0


class EventsIngest:
    def __init__(self, engine: AsyncEngine, on_accepted: Callable[[], None]) -> None:
        # Autocommit: each batch is one INSERT that commits itself (one round trip), and
        # the writer keeps its connection while requests keep coming (no pool pre-ping).
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.on_accepted = on_accepted
        self._waiting: list[tuple[shop_events.EventData, asyncio.Future[shop_events.Accepted]]]
        self._waiting = []
        self._writer: asyncio.Task[None] | None = None

    async def accept(self, event: shop_events.EventData) -> shop_events.Accepted:
        """Store the event (or find it stored) together with whatever else is waiting."""
        answer: asyncio.Future[shop_events.Accepted] = asyncio.get_running_loop().create_future()
        self._waiting.append((event, answer))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="events-ingest")
        return await answer

    async def _write(self) -> None:
        # Checked again after the connection is closed: a request that arrived meanwhile
        # saw this task still running and started no writer of its own.
        while self._waiting:
            connection: AsyncConnection | None = None
            try:
                while self._waiting:
                    connection = await self._write_batch(connection)
            finally:
                if connection is not None:
                    await connection.close()

    async def _write_batch(self, connection: AsyncConnection | None) -> AsyncConnection | None:
        """Write the next batch; returns the connection to go on with (None if broken)."""
        batch = self._waiting[:MAX_INGEST_BATCH]
        del self._waiting[:MAX_INGEST_BATCH]
        try:
            if connection is None:
                connection = await self.engine.connect()
            answers = await shop_events.accept_on(connection, [event for event, _ in batch])
        except Exception as exc:  # each request answers it (503 for the database)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if connection is not None:  # it may be broken: the next batch reconnects
                with contextlib.suppress(Exception):
                    await connection.close()
            return None
        for (_, future), accepted in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(accepted)
        if any(not accepted.replayed for accepted in answers):
            self.on_accepted()
        return connection

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer


class EventsWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        on_applied: Callable[[shop_events.Applied], None],
        poll_seconds: float = POLL_SECONDS,
        appliers: int = 1,
    ) -> None:
        self.sessions = sessions
        self.on_applied = on_applied
        self.poll_seconds = poll_seconds
        self.appliers = max(1, appliers)
        self._wake = asyncio.Event()
        self._wake.set()  # a first pass at start-up: pending events of the last run
        self._passes = 0  # passes started
        self._last_done = 0  # the last pass that ended with nothing left to claim
        self._idle = asyncio.Condition()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def request_stop(self) -> None:
        """Finish the batches being applied, take no new ones, end `run_forever`."""
        self._stopping = True
        self._wake.set()

    async def run_forever(self) -> None:
        while not self._stopping:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.run_until_empty()
            except STORAGE_ERRORS as exc:
                logger.warning("events worker: database error (%r); retrying", exc)
                await asyncio.sleep(ERROR_PAUSE_SECONDS)
            except Exception:  # a bug must not end the task; the events stay pending
                logger.exception("events worker pass failed")
                await asyncio.sleep(ERROR_PAUSE_SECONDS)

    async def run_until_empty(self) -> int:
        """One pass: `appliers` loops take batches until a claim finds nothing; returns how
        many events were finished. While one batch waits for the database, another one's
        Python runs (one applier: ~190 events/s, two: see docs/benchmarks.md)."""
        self._passes += 1
        number = self._passes
        counts = await asyncio.gather(*(self._apply_until_empty() for _ in range(self.appliers)))
        async with self._idle:
            self._last_done = number
            self._idle.notify_all()
        return sum(counts)

    async def _apply_until_empty(self) -> int:
        finished = 0
        while not self._stopping:
            try:
                batch = await shop_events.apply_pending(self.sessions)
            except DBAPIError as exc:
                if not shop_events.is_conflict(exc):
                    raise
                # A concurrent writer won (a deadlock, a busy SQLite): the rows stay pending.
                await asyncio.sleep(CONFLICT_PAUSE_SECONDS)
                continue
            for applied in batch:
                self.on_applied(applied)
            if not batch:
                return finished
            finished += len(batch)
            await asyncio.sleep(0)  # let waiting requests in between two batches
        return finished

    async def drain(self, timeout: float = 30.0) -> None:
        """Until a pass that started after this call found nothing left to apply."""
        started = self._passes

        async def pass_done() -> None:
            async with self._idle:
                while self._last_done <= started:
                    self.wake()
                    await self._idle.wait()

        await asyncio.wait_for(pass_done(), timeout)


class EventsQueue:
    """What the app keeps: the ingest and the worker of this web process."""

    def __init__(self, ingest: EventsIngest, worker: EventsWorker) -> None:
        self.ingest = ingest
        self.worker = worker


EVENTS_QUEUE = web.AppKey("events_queue", EventsQueue)


def _offer_live(app: web.Application) -> Callable[[shop_events.Applied], None]:
    metrics = app.get(METRICS)

    def after_apply(applied: shop_events.Applied) -> None:
        if metrics is not None:
            metrics.observe_event_applied(applied.status.value, applied.received_at)
        if applied.status is ShopEventStatus.applied and applied.result.get("surveys_scheduled"):
            # The customer may be chatting now; the offer may wait on Rasa.
            spawn(app, offer_after_event(app, applied.customer), name=f"offer-survey-{applied.id}")

    return after_apply


async def events_queue_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the database and the background tasks): start the worker; on
    shutdown finish the batch being written, then stop the worker (pending rows stay)."""
    engine = app[ENGINE]
    appliers = app[SETTINGS].events_appliers if engine.dialect.name == "postgresql" else 1
    worker = EventsWorker(app[SESSIONS], _offer_live(app), appliers=appliers)
    ingest = EventsIngest(app[ENGINE], worker.wake)
    app[EVENTS_QUEUE] = EventsQueue(ingest, worker)
    task = asyncio.create_task(worker.run_forever(), name="events-worker")
    yield
    await ingest.close()
    # The batches being applied commit (or roll back) first: a task cancelled inside its
    # transaction could leave the transaction and its locks behind on the connection.
    worker.request_stop()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), STOP_SECONDS)
    await stop(task)


async def drain(app: web.Application, timeout: float = 30.0) -> None:
    """Wait until this web process's worker has applied every pending event it may take."""
    await app[EVENTS_QUEUE].worker.drain(timeout)
