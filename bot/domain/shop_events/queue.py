"""The shop events' queue: accepted now, applied in the background.

`accept_on` stores validated events as `pending` in `shop_events` (idempotent by `id`: a
replay changes nothing and gets the stored state); `apply_pending` claims a batch of
pending events, each customer's in the order received, applies it in one transaction
(`batch.apply_batch`, or `rules.apply` one event at a time) and stores each result (or the
refusal, as `failed`). `receive` does both at once (tests, scripts). The claim's SQL differs
by dialect (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: a write first).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, Table, bindparam, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from bot.domain.enums import ShopEventStatus
from bot.domain.errors import Conflict, InvalidInput
from bot.domain.shop_events import batch, rules
from bot.domain.shop_events.payload import EventData, event_from_json, event_to_json
from bot.storage.models import ShopEvent, utcnow

MAX_ATTEMPTS = 5
logger = logging.getLogger(__name__)


# ---- the queue: accept now, apply in the background ------------------------------------------

# Events per claimed batch. Batches of several workers are applied in parallel: the batch
# apply refreshes the lifecycles roll-ups once, at its end, in key order (migration 0030;
# before it, two concurrent apply transactions deadlocked on the journey roll-up's day rows
# and only one batch at a time was applied across all workers).
QUEUE_BATCH = 128


@dataclass(frozen=True)
class Accepted:
    """The answer to one POSTed event: new (pending) or a replay with the stored state."""

    id: str
    replayed: bool
    status: ShopEventStatus
    result: dict[str, Any] | None


@dataclass(frozen=True)
class Applied:
    """An event the worker finished: applied (its result) or failed (the error)."""

    id: str
    customer: str
    status: ShopEventStatus
    result: dict[str, Any]
    received_at: datetime | None = None  # when it was accepted (the apply lag's start)


@dataclass(frozen=True)
class Receipt:
    result: dict[str, Any]
    replayed: bool


async def accept(
    sessions: async_sessionmaker[AsyncSession],
    events: Sequence[EventData],
    now: datetime | None = None,
) -> list[Accepted]:
    """`accept_on` in a transaction of its own."""
    async with sessions() as session, session.begin():
        return await accept_on(await session.connection(), events, now)


async def accept_on(
    connection: AsyncConnection, events: Sequence[EventData], now: datetime | None = None
) -> list[Accepted]:
    """Store new events as pending with one `INSERT … ON CONFLICT DO NOTHING`; an id
    already stored (or earlier in `events`) is a replay, changes nothing and is answered
    with its stored state (one SELECT). One answer per event, in order. The web's ingest
    runs it on an autocommit connection: the INSERT is its own transaction."""
    now = now or utcnow()
    first: dict[str, EventData] = {}
    for event in events:
        first.setdefault(event.id, event)
    rows = [
        {
            "id": e.id,
            "type": e.type,
            "occurred_at": e.occurred_at,
            # A microsecond apart: the batch's arrival order is the order they are applied in.
            "received_at": now + timedelta(microseconds=n),
            "status": ShopEventStatus.pending,
            "payload": event_to_json(e),
            "customer_ref": e.customer.external_id,
            "subject_ref": subject_ref(e),
            "attempts": 0,
        }
        for n, e in enumerate(first.values())
    ]
    table = ShopEvent.__table__
    assert isinstance(table, Table)
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(table).on_conflict_do_nothing(index_elements=["id"])
    inserted = set((await connection.execute(statement.returning(table.c.id), rows)).scalars())
    known = [event_id for event_id in first if event_id not in inserted]
    stored: dict[str, tuple[ShopEventStatus, dict[str, Any] | None]] = {}
    if known:
        found = await connection.execute(
            select(table.c.id, table.c.status, table.c.result).where(table.c.id.in_(known))
        )
        stored = {row.id: (row.status, row.result) for row in found}
    answers = []
    for event in events:
        if event.id in inserted:
            inserted.discard(event.id)  # a second copy in the same batch is a replay
            answers.append(Accepted(event.id, False, ShopEventStatus.pending, None))
        else:
            status, result = stored.get(event.id, (ShopEventStatus.pending, None))
            answers.append(Accepted(event.id, True, status, result))
    return answers


# PostgreSQL's "try the transaction again" errors: deadlock, serialization failure.
RETRY_SQLSTATES = ("40P01", "40001")


def is_conflict(exc: BaseException) -> bool:
    """A conflict with concurrent writers (the rows stay pending; try again shortly)."""
    if isinstance(exc, (IntegrityError, OperationalError)):
        return True
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in RETRY_SQLSTATES


class _Refused(Exception):
    """Raised inside the batch's transaction to roll it back for one event."""

    def __init__(self, event_id: str, customer: str, error: Exception) -> None:
        super().__init__(event_id)
        self.event_id = event_id
        self.customer = customer
        self.error = error


class _FastFailed(Exception):
    """The batch apply failed in a way no one event can be blamed for (a constraint conflict,
    a bug): the batch is applied again one event at a time by the ORM path, which does."""


async def apply_pending(
    sessions: async_sessionmaker[AsyncSession], limit: int = QUEUE_BATCH, *, fast: bool = True
) -> list[Applied]:
    """Claim up to `limit` pending events (oldest first) and apply them in one transaction;
    [] when nothing is left that this worker may take.

    A customer's events are applied in the order they were received: a claim only takes
    an event that is its customer's oldest pending one (so one event per customer per
    batch). Several workers (web replicas, or several appliers in one process) apply
    batches in parallel: on PostgreSQL rows another transaction holds are skipped (`FOR
    UPDATE SKIP LOCKED`), so their customers' later events wait for them; on SQLite the
    claim is a write, so claims are serialised by SQLite's single writer. A crash loses
    nothing: the rows stay pending and the next claim takes them.

    The batch is applied by `batch.apply_batch` (set-based statements for the
    common events, `rules.apply` for the others, in the same transaction); with
    `fast=False`, or when that failed without an event to blame, by `apply` one event at a
    time. An event refused by a rule that needs the database (e.g. an order number of
    another customer) rolls the batch back and is stored as failed in its own transaction;
    the rest of the batch is claimed again; so is an unexpected error or a constraint
    conflict (IntegrityError), failed after MAX_ATTEMPTS. Other database errors (a busy
    SQLite, a deadlock, a lost connection) roll back and propagate for the caller to retry.
    """
    try:
        async with sessions() as session, session.begin():
            claimed = await _claim(session, limit)
            parsed: list[tuple[str, EventData, datetime]] = []
            for event_id, payload, received_at in claimed:
                try:
                    parsed.append((event_id, event_from_json(payload), received_at))
                except Exception as exc:
                    raise _Refused(event_id, "", exc) from exc

            async def slow(event: EventData, received_at: datetime) -> dict[str, Any]:
                try:
                    return await rules.apply(session, event, received_at)
                except DBAPIError as exc:
                    if not isinstance(exc, IntegrityError):
                        raise  # busy, deadlock, connection lost: the caller retries
                    raise _Refused(event.id, event.customer.external_id, exc) from exc
                except Exception as exc:
                    raise _Refused(event.id, event.customer.external_id, exc) from exc

            if fast and parsed:
                try:
                    results = await batch.apply_batch(await session.connection(), parsed, slow)
                except _Refused:
                    raise
                except DBAPIError as exc:
                    if not isinstance(exc, IntegrityError):
                        raise
                    raise _FastFailed from exc
                except Exception as exc:
                    raise _FastFailed from exc
            else:
                results = [await slow(event, received_at) for _, event, received_at in parsed]
            done = [
                Applied(
                    event_id,
                    event.customer.external_id,
                    ShopEventStatus.applied,
                    result,
                    received_at,
                )
                for (event_id, event, received_at), result in zip(parsed, results, strict=True)
            ]
            if done:
                await _finish(session, done)
        return done
    except _Refused as refused:
        failed = await _refuse(sessions, refused)
        return [failed] if failed is not None else []
    except _FastFailed as exc:
        logger.warning("shop events: batch apply failed (%r); one event at a time", exc.__cause__)
        return await apply_pending(sessions, limit, fast=False)


def subject_ref(event: EventData) -> str:
    """What the event is about besides its customer: its order or its subscription."""
    if event.order is not None:
        return f"o:{event.order.number}"
    assert event.subscription is not None
    return f"s:{event.subscription.id}"


@functools.lru_cache(maxsize=16)
def _claimable(limit: int) -> Select[tuple[str]]:
    """The oldest pending events that are their customer's oldest pending one, and the
    oldest pending one naming their order or subscription: a later event of a customer (or
    another customer's event naming the same order, which one of them is refused for) waits
    until the earlier one is applied (by whichever worker).

    Built once per `limit` (statements are immutable): building it (two aliased NOT EXISTS
    subqueries) cost 10-30 ms of Python, paid by every applier of every web replica at
    each poll, every second even with nothing pending (issue #25: ~17 % of a production web
    replica's Python time at the chat benchmark's saturation)."""

    def earlier_pending(column: str) -> Any:
        earlier = aliased(ShopEvent)
        return (
            select(earlier.id)
            .where(
                earlier.status == ShopEventStatus.pending,
                getattr(earlier, column) == getattr(ShopEvent, column),
                tuple_(earlier.received_at, earlier.id)
                < tuple_(ShopEvent.received_at, ShopEvent.id),
            )
            .exists()
        )

    return (
        select(ShopEvent.id)
        .where(
            ShopEvent.status == ShopEventStatus.pending,
            ShopEvent.payload.is_not(None),
            ~earlier_pending("customer_ref"),
            ~earlier_pending("subject_ref"),
        )
        .order_by(ShopEvent.received_at, ShopEvent.id)
        .limit(limit)
    )


async def _claim(session: AsyncSession, limit: int) -> list[tuple[str, dict[str, Any], datetime]]:
    if _dialect(session) == "postgresql":
        # Plan this transaction's statements for the table as it is now. A connection keeps
        # its prepared statements, and PostgreSQL switches one to a generic plan after five
        # runs: planned while the queue was short (a quiet start), the claim kept a nested
        # loop over every pending row and took seconds once thousands were pending.
        await session.execute(
            text("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)")
        )
        # Rows another worker holds are skipped; so are their customers' later events,
        # which are not their customer's oldest pending one while the holder works.
        query = (
            _claimable(limit)
            .add_columns(ShopEvent.payload, ShopEvent.received_at)
            .with_for_update(skip_locked=True, of=ShopEvent)
        )
        return [(row.id, row.payload, row.received_at) for row in await session.execute(query)]
    # SQLite: a write first, so this transaction holds the database's write lock from the
    # claim on and no other applier reads the same rows as pending meanwhile; but only
    # when something is pending (the idle poll takes no write lock).
    if await session.scalar(_claimable(1)) is None:
        return []
    claim = (
        update(ShopEvent)
        .where(ShopEvent.id.in_(_claimable(limit).scalar_subquery()))
        .values(status=ShopEvent.status)
        .returning(ShopEvent.id, ShopEvent.payload, ShopEvent.received_at)
        .execution_options(synchronize_session=False)
    )
    rows = sorted((await session.execute(claim)).all(), key=lambda r: (r.received_at, r.id))
    return [(row.id, row.payload, row.received_at) for row in rows]


async def _finish(session: AsyncSession, done: list[Applied]) -> None:
    """Store every result of the batch with one executemany UPDATE."""
    now = utcnow()
    statement = (
        update(ShopEvent.__table__)  # type: ignore[arg-type]
        .where(ShopEvent.__table__.c.id == bindparam("event_id"))
        .values(
            status=bindparam("new_status"),
            result=bindparam("new_result"),
            applied_at=now,
            payload=None,
            customer_ref=None,
            subject_ref=None,
        )
    )
    params = [
        {"event_id": a.id, "new_status": a.status.value, "new_result": a.result} for a in done
    ]
    await (await session.connection()).execute(statement, params)


async def _refuse(sessions: async_sessionmaker[AsyncSession], refused: _Refused) -> Applied | None:
    """Store a refused event as failed (a rule refused it), or count one more attempt for
    an unexpected error and fail it after MAX_ATTEMPTS; None while it stays pending."""
    error = refused.error
    async with sessions() as session, session.begin():
        row = await session.get(ShopEvent, refused.event_id, with_for_update=True)
        if row is None or row.status is not ShopEventStatus.pending:
            return None
        row.attempts += 1
        if isinstance(error, InvalidInput):
            body = {"code": error.code, "message": error.message}
        elif row.attempts >= MAX_ATTEMPTS:
            body = {
                "code": "not_applied",
                "message": f"The event could not be applied "
                f"({type(error).__name__}); it was tried {row.attempts} times.",
            }
        else:
            logger.warning("shop event %s not applied: %r", row.id, error)
            return None
        row.status, row.result, row.applied_at = ShopEventStatus.failed, {"error": body}, utcnow()
        row.payload, row.customer_ref, row.subject_ref = None, None, None
        return Applied(
            row.id, refused.customer, ShopEventStatus.failed, {"error": body}, row.received_at
        )


async def drain(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Apply pending events until none is left that this caller may take (tests, `receive`);
    retries conflicts. Returns how many events were finished."""
    finished = 0
    for attempt in range(100 * MAX_ATTEMPTS):
        try:
            applied = await apply_pending(sessions)
        except DBAPIError as exc:
            if not is_conflict(exc):
                raise
            await asyncio.sleep(0.01 * min(attempt + 1, 10))
            continue
        if not applied:
            return finished
        finished += len(applied)
    raise Conflict("The events kept conflicting with concurrent writers.", code="busy")


async def stored_state(
    sessions: async_sessionmaker[AsyncSession], event_id: str
) -> tuple[ShopEventStatus, dict[str, Any] | None] | None:
    async with sessions() as session:
        row = (
            await session.execute(
                select(ShopEvent.status, ShopEvent.result).where(ShopEvent.id == event_id)
            )
        ).first()
    return None if row is None else (row.status, row.result)


async def receive(
    sessions: async_sessionmaker[AsyncSession], event: EventData, now: datetime | None = None
) -> Receipt:
    """Accept an event and apply the queue now: the synchronous path (tests, scripts). A
    replay returns the first result; an event refused when applied raises InvalidInput."""
    [accepted] = await accept(sessions, [event], now)
    await drain(sessions)
    state = await stored_state(sessions, event.id)
    while state is not None and state[0] is ShopEventStatus.pending:
        # Another worker holds this customer's events: it finishes them shortly.
        await asyncio.sleep(0.01)
        await drain(sessions)
        state = await stored_state(sessions, event.id)
    assert state is not None
    status, result = state
    assert result is not None
    if status is ShopEventStatus.failed:
        error = result["error"]
        raise InvalidInput(error["message"], code=error["code"])
    return Receipt(result, replayed=accepted.replayed)


def _dialect(session: AsyncSession) -> str:
    bind = session.bind
    assert bind is not None
    return bind.dialect.name
