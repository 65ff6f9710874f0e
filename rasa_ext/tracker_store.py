"""A SQL tracker store that never falls back to memory, keeps the last tracker per
conversation, and does its database I/O off the event loop.

Rasa 3.6 wraps every tracker store in `FailSafeTrackerStore`: when the database fails, a
retrieve returns None (the conversation silently starts over) and a save goes to an
in-memory store (the turn is silently lost on the next read). `SQLTrackerStore` also
starts without a database (it only logs "Could not create tables"). Both hide an outage.

Here the store refuses to start without its database (Rasa then stops with "Cannot
connect to tracker store"), and this module makes the agent's fail-safe wrapper re-raise
instead of falling back, so a turn during an outage fails loudly: the strict REST channel
answers 503 and the web service shows its "please try again in a moment" message.

Turn cost (issue #25, docs/decisions.md): Rasa's store reads and replays the whole session
on every `retrieve` and counts the stored events (twice, with the broker) on every `save`,
all with synchronous SQLAlchemy inside Rasa's event loop. This store

* keeps the last tracker of each conversation (bounded LRU, `tracker_cache_size`), with
  its version: the highest stored event id of the conversation and the number of stored
  events of its session. `retrieve` reads only `max(id)` for the sender (an index lookup)
  and returns the kept tracker when nobody wrote since; otherwise (another worker wrote,
  the events were deleted, the conversation is unknown here) it reads the session as Rasa
  does. The kept tracker is handed out while it is unchanged (as many events as stored):
  Rasa's turn mutates the tracker it retrieved, and the REST channel reads it before and
  after each turn (rasa_ext/channels.py). While a turn has changed it (or after a turn
  failed with it) a `retrieve` reads the database and hands out that copy.
* on `save` takes the offset of the new events from the version of the tracker it handed
  out (no COUNT), stores them and only then returns: the turn is in the database before
  the reply leaves (no write-behind). A tracker it did not hand out falls back to Rasa's
  COUNT.
* runs every database call in a thread (`asyncio.to_thread`), so one conversation's I/O
  no longer holds up the other conversations of the worker.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from rasa.core.agent import Agent
from rasa.core.tracker_store import (
    FailSafeTrackerStore,
    InMemoryTrackerStore,
    SQLTrackerStore,
    TrackerStore,
)
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

logger = logging.getLogger(__name__)

DEFAULT_CACHE_SIZE = 5000
# max(id) per sender is one index lookup with this index (Rasa only indexes sender_id).
VERSION_INDEX = "ix_events_sender_id_id"


class TrackerStoreUnavailable(RuntimeError):
    """The tracker store failed; the turn must fail rather than use a memory fallback."""


def refuse_fallback(error: Exception) -> None:
    logger.error("tracker store unavailable (no fallback to memory): %s", error)
    raise TrackerStoreUnavailable(str(error)) from error


@dataclass
class _Kept:
    tracker: DialogueStateTracker
    stored: int  # events of the tracker that are stored (its latest session)
    max_id: int | None  # highest stored event id of the conversation when kept

    def unchanged(self) -> bool:
        return len(self.tracker.events) == self.stored


class StrictSQLTrackerStore(SQLTrackerStore):
    def __init__(
        self, *args: Any, tracker_cache_size: int | str = DEFAULT_CACHE_SIZE, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        # SQLTrackerStore swallows "could not create tables"; a failed connection here
        # is an OperationalError, which Rasa turns into "Cannot connect to tracker store".
        with self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        self._create_version_index()
        # The same engine and pool, each statement its own transaction: the version probe
        # and the insert of a turn's events are one round trip each.
        self._autocommit: sa.engine.Engine = self.engine.execution_options(
            isolation_level="AUTOCOMMIT"
        )
        self.cache_size = int(tracker_cache_size)
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        # A copy read while the kept tracker was changed by a turn: (tracker, stored count).
        self._issued: OrderedDict[str, tuple[DialogueStateTracker, int]] = OrderedDict()
        logger.info("strict SQL tracker store connected to %r", self.engine.url)

    def _create_version_index(self) -> None:
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    sa.text(
                        f"CREATE INDEX IF NOT EXISTS {VERSION_INDEX} ON "
                        f"{self.SQLEvent.__tablename__} (sender_id, id)"
                    )
                )
        except sa.exc.SQLAlchemyError as error:  # two workers starting at once
            logger.warning("could not create index %s: %s", VERSION_INDEX, error)

    # ---- the kept trackers (touched only on the event loop) ----------------------------

    @property
    def domain(self) -> Domain:
        return self._domain

    @domain.setter
    def domain(self, domain: Domain | None) -> None:
        # A new model's domain: kept trackers were built with the old one's slots.
        self._domain = domain or Domain.empty()
        self._kept = OrderedDict()
        self._issued = OrderedDict()

    def _keep(self, sender_id: str, entry: _Kept) -> None:
        if self.cache_size <= 0:
            return
        self._kept[sender_id] = entry
        self._kept.move_to_end(sender_id)
        while len(self._kept) > self.cache_size:
            self._kept.popitem(last=False)

    def kept_tracker(self, sender_id: str) -> DialogueStateTracker | None:
        """The kept tracker as this worker last stored or read it, without asking the
        database whether another worker wrote since (None when not kept, or while a turn
        changes it). For reading back the turn this worker has just saved (the REST
        channel's NLU result), which saves a `max(id)` round trip per turn."""
        kept = self._kept.get(sender_id)
        return kept.tracker if kept is not None and kept.unchanged() else None

    def forget(self, sender_id: str) -> None:
        self._kept.pop(sender_id, None)
        self._issued.pop(sender_id, None)

    # ---- synchronous database work, run in a thread -------------------------------------

    def _max_id(self, session: Any, sender_id: str) -> int | None:
        value = (
            session.query(sa.func.max(self.SQLEvent.id))
            .filter(self.SQLEvent.sender_id == sender_id)
            .scalar()
        )
        return None if value is None else int(value)

    def _read_max_id(self, sender_id: str) -> int | None:
        """The version probe of every retrieve: one statement in autocommit, so one round
        trip to the database (a session would add BEGIN and ROLLBACK: three)."""
        table = self.SQLEvent.__table__
        query = sa.select(sa.func.max(table.c.id)).where(table.c.sender_id == sender_id)
        with self._autocommit.connect() as connection:
            value = connection.execute(query).scalar()
        return None if value is None else int(value)

    def _read_session(self, sender_id: str) -> tuple[list[dict[str, Any]], int | None]:
        """The latest session's events (as Rasa's retrieve) and the conversation's max id."""
        with self.session_scope() as session:
            # max(id) first: a row written between the two reads makes the version older
            # than the events, so the next retrieve reads again (never the reverse).
            max_id = self._max_id(session, sender_id)
            rows = self._event_query(session, sender_id, fetch_events_from_all_sessions=False).all()
        return [json.loads(row.data) for row in rows], max_id

    def _count_stored(self, sender_id: str) -> int:
        with self.session_scope() as session:
            count: int = self._event_query(
                session, sender_id, fetch_events_from_all_sessions=False
            ).count()
            return count

    def _insert(self, sender_id: str, events: list[dict[str, Any]]) -> int | None:
        """Store serialised events (`Event.as_dict()`); returns the conversation's max id.

        On PostgreSQL one multi-row `INSERT … RETURNING id` in autocommit (atomic, one round
        trip instead of BEGIN, INSERT, SELECT max(id), COMMIT): the conversation's turns run
        one at a time (lock store), so its newest row is the highest id just returned."""
        rows = self._rows(sender_id, events)
        if rows and self.engine.dialect.name == "postgresql":
            table = self.SQLEvent.__table__
            statement = sa.insert(table).values(rows).returning(table.c.id)
            with self._autocommit.connect() as connection:
                return max(int(row_id) for (row_id,) in connection.execute(statement))
        with self.session_scope() as session:
            if rows:
                session.execute(sa.insert(self.SQLEvent.__table__), rows)
            max_id = self._max_id(session, sender_id)
            session.commit()
        return max_id

    def _rows(self, sender_id: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = []
        for data in events:
            rows.append(
                {
                    "sender_id": sender_id,
                    "type_name": data.get("event"),
                    "timestamp": data.get("timestamp"),
                    "intent_name": data.get("parse_data", {})
                    .get("intent", {})
                    .get(INTENT_NAME_KEY),
                    "action_name": data.get("name"),
                    "data": json.dumps(data),
                }
            )
        return rows

    def _delete(self, sender_id: str) -> None:
        with self.session_scope() as session:
            session.query(self.SQLEvent).filter(self.SQLEvent.sender_id == sender_id).delete()
            session.commit()

    # ---- TrackerStore --------------------------------------------------------------------

    async def keys(self) -> Iterable[str]:
        return await asyncio.to_thread(self._keys)

    def _keys(self) -> list[str]:
        with self.session_scope() as session:
            return [sender for (sender,) in session.query(self.SQLEvent.sender_id).distinct()]

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        kept = self._kept.get(sender_id)
        if kept is not None and kept.unchanged():
            max_id = await asyncio.to_thread(self._read_max_id, sender_id)
            kept = self._kept.get(sender_id)  # may have changed while we waited
            if kept is not None and kept.unchanged() and kept.max_id == max_id:
                self._kept.move_to_end(sender_id)
                return kept.tracker
        events, max_id = await asyncio.to_thread(self._read_session, sender_id)
        if not (self.domain and events):
            self.forget(sender_id)
            return None
        tracker = DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        kept = self._kept.get(sender_id)
        if kept is None or kept.unchanged():
            self._keep(sender_id, _Kept(tracker, len(events), max_id))
        else:  # a turn holds the kept tracker and changed it (or failed with it)
            self._issued[sender_id] = (tracker, len(events))
            self._issued.move_to_end(sender_id)
            while len(self._issued) > max(self.cache_size, 1):
                self._issued.popitem(last=False)
        return tracker

    async def retrieve_full_tracker(self, conversation_id: str) -> DialogueStateTracker | None:
        return await asyncio.to_thread(self._retrieve_full_sync, conversation_id)

    def _retrieve_full_sync(self, sender_id: str) -> DialogueStateTracker | None:
        with self.session_scope() as session:
            rows = self._event_query(session, sender_id, fetch_events_from_all_sessions=True).all()
        events = [json.loads(row.data) for row in rows]
        if self.domain and events:
            return DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        return None

    async def save(self, tracker: DialogueStateTracker) -> None:
        sender_id = tracker.sender_id
        # Rasa's SQL store only appends, so `PUT .../tracker/events` with an empty list (the
        # product's customer erasure) would leave every stored event in place. A tracker
        # with no events can only come from such a replace: delete what is stored.
        if len(tracker.events) == 0:
            self.forget(sender_id)
            await asyncio.to_thread(self._delete, sender_id)
            logger.info("erased the stored events of one conversation")
            return
        kept, issued = self._kept.get(sender_id), self._issued.get(sender_id)
        handed_out = True
        if kept is not None and kept.tracker is tracker:
            stored = kept.stored
        elif issued is not None and issued[0] is tracker:
            stored = issued[1]
        else:  # a tracker this store did not hand out (e.g. replaced through the API)
            handed_out = False
            stored = await asyncio.to_thread(self._count_stored, sender_id)
        new_events = list(itertools.islice(tracker.events, stored, len(tracker.events)))
        # Serialised once, for the broker and the database alike.
        serialised = [event.as_dict() for event in new_events]
        # Forget first: if anything below fails, the next retrieve reads the database.
        self.forget(sender_id)
        if self.event_broker is not None:
            for data in serialised:
                self.event_broker.publish({"sender_id": sender_id, **data})
        max_id = await asyncio.to_thread(self._insert, sender_id, serialised)
        # Keep it only when it extends what was stored (handed out by this store, or
        # nothing was stored). A replace through the API (`PUT .../events`) with other
        # events only appends past the stored count, as in Rasa: the next retrieve reads it.
        if handed_out or stored == 0:
            self._keep(sender_id, _Kept(*_session_view(tracker, self.domain), max_id))
        logger.debug("tracker %s: %d new events stored", sender_id, len(new_events))

    async def stream_events(self, tracker: DialogueStateTracker) -> None:
        """Publish the events not stored yet, as Rasa does, without reading them back
        (`save` publishes itself, with the offset it already knows)."""
        if self.event_broker is None:
            return
        stored = await asyncio.to_thread(self._count_stored, tracker.sender_id)
        new_events = list(itertools.islice(tracker.events, stored, len(tracker.events)))
        await self._stream_new_events(self.event_broker, new_events, tracker.sender_id)


def _session_view(
    tracker: DialogueStateTracker, domain: Domain
) -> tuple[DialogueStateTracker, int]:
    """What `retrieve` reads back once `tracker` is stored, and its number of events.

    Rasa's session query returns the events whose timestamp is at least the latest stored
    SessionStarted's. Without a new SessionStarted in the tracker that is all its events
    (it was read that way, and later events are later). With one, it is the events from
    that timestamp on: every stored event of the conversation that is not in the tracker
    predates the session the tracker was read from, hence the new one. The tracker is then
    rebuilt from those events (the same event objects, as `from_dict` would replay them)."""
    starts = [event.timestamp for event in tracker.events if isinstance(event, SessionStarted)]
    events = list(tracker.events)
    if not starts or all(event.timestamp >= max(starts) for event in events):
        return tracker, len(events)
    start = max(starts)
    session = [event for event in events if event.timestamp >= start]
    rebuilt = DialogueStateTracker.from_events(tracker.sender_id, session, domain.slots)
    return rebuilt, len(session)


def _strict_fail_safe(store: TrackerStore | None, domain: Domain) -> TrackerStore:
    if store is None:
        store = InMemoryTrackerStore(domain)
    store.domain = domain
    return FailSafeTrackerStore(store, on_tracker_store_error=refuse_fallback)


# Rasa imports this module (to find the class above) before it builds the Agent.
Agent._create_tracker_store = staticmethod(_strict_fail_safe)
