"""A SQL tracker store that never falls back to memory.

Rasa 3.6 wraps every tracker store in `FailSafeTrackerStore`: when the database fails, a
retrieve returns None (the conversation silently starts over) and a save goes to an
in-memory store (the turn is silently lost on the next read). `SQLTrackerStore` also
starts without a database (it only logs "Could not create tables"). Both hide an outage.

Here the store refuses to start without its database (Rasa then stops with "Cannot
connect to tracker store"), and this module makes the agent's fail-safe wrapper re-raise
instead of falling back, so a turn during an outage fails loudly: the strict REST channel
answers 503 and the web service shows its "please try again in a moment" message.
"""

from __future__ import annotations

import itertools
import logging
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
from rasa.shared.core.trackers import DialogueStateTracker

logger = logging.getLogger(__name__)


class TrackerStoreUnavailable(RuntimeError):
    """The tracker store failed; the turn must fail rather than use a memory fallback."""


def refuse_fallback(error: Exception) -> None:
    logger.error("tracker store unavailable (no fallback to memory): %s", error)
    raise TrackerStoreUnavailable(str(error)) from error


class StrictSQLTrackerStore(SQLTrackerStore):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # SQLTrackerStore swallows "could not create tables"; a failed connection here
        # is an OperationalError, which Rasa turns into "Cannot connect to tracker store".
        with self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        logger.info("strict SQL tracker store connected to %r", self.engine.url)

    async def save(self, tracker: DialogueStateTracker) -> None:
        # Rasa's SQL store only appends, so `PUT .../tracker/events` with an empty list (the
        # product's customer erasure) would leave every stored event in place. A tracker
        # with no events can only come from such a replace: delete what is stored.
        if len(tracker.events) == 0:
            with self.session_scope() as session:
                session.query(self.SQLEvent).filter(
                    self.SQLEvent.sender_id == tracker.sender_id
                ).delete()
                session.commit()
            logger.info("erased the stored events of one conversation")
            return
        await super().save(tracker)

    async def stream_events(self, tracker: DialogueStateTracker) -> None:
        """Publish the events not stored yet, as Rasa does, without reading them back.

        Rasa's version retrieves the whole stored session (one row per event, each parsed
        and replayed into a tracker) only to count it; profiled under load (docs/benchmarks.md,
        production profile) that was half of every `save`. The same query's COUNT gives the
        same offset."""
        if self.event_broker is None:
            return
        with self.session_scope() as session:
            stored = self._event_query(
                session, tracker.sender_id, fetch_events_from_all_sessions=False
            ).count()
        new_events = list(itertools.islice(tracker.events, stored, len(tracker.events)))
        await self._stream_new_events(self.event_broker, new_events, tracker.sender_id)


def _strict_fail_safe(store: TrackerStore | None, domain: Domain) -> TrackerStore:
    if store is None:
        store = InMemoryTrackerStore(domain)
    store.domain = domain
    return FailSafeTrackerStore(store, on_tracker_store_error=refuse_fallback)


# Rasa imports this module (to find the class above) before it builds the Agent.
Agent._create_tracker_store = staticmethod(_strict_fail_safe)  # type: ignore[method-assign,assignment]
