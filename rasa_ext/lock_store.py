"""A Redis lock store that waits milliseconds, not a second, and updates locks atomically.

Rasa 3.6's `LockStore.lock` polls a taken conversation lock every `wait_time_in_seconds=1`
(and every caller uses that default), so a message arriving while the same conversation's
previous turn runs waits a whole second. Its `RedisLockStore` also updates a lock with a
plain GET then SET: two workers issuing a ticket at the same moment can both read the same
lock and one ticket is lost (or two get the same number), and a cleanup can delete a lock
another worker has just joined (that worker then fails with "Could not acquire lock").

`FastRedisLockStore` (endpoints.prod.yml, `lock_store.type`) keeps Rasa's ticket lock and
key layout, but

* polls a taken lock every few milliseconds (`poll_seconds`, doubling up to
  `max_poll_seconds`), so the next turn starts within milliseconds of the previous one's
  end (tests/test_lock_store.py);
* makes every change of a lock (issue a ticket, finish serving, delete when nobody waits,
  drop expired tickets) one optimistic Redis transaction (WATCH/MULTI/EXEC, retried when
  another worker changed the lock in between);
* takes a free lock in one round trip (`SET NX` of a lock holding only its ticket) and
  gives it back in one (a script deleting the lock if it is still exactly that), falling
  back to the transactions when another turn of the conversation is there: an uncontended
  turn cost seven round trips (two transactions and a GET), each a wait of the event loop;
* talks to Redis with redis-py's asyncio client inside `lock()` (Rasa's store makes its
  synchronous Redis calls on the event loop: profiled under load, 6.5 % of a worker's
  event-loop samples were spent waiting for Redis there). The synchronous methods stay,
  with the same transactions, for anything else that calls them.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis
import redis.asyncio
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

DEFAULT_POLL_SECONDS = 0.002
DEFAULT_MAX_POLL_SECONDS = 0.02
# Expired tickets are ignored by every reader; they are removed from Redis this often.
EXPIRED_CLEANUP_SECONDS = 1.0


class FastRedisLockStore(RedisLockStore):
    def __init__(
        self,
        endpoint_config: EndpointConfig | None = None,
        poll_seconds: float | str = DEFAULT_POLL_SECONDS,
        max_poll_seconds: float | str = DEFAULT_MAX_POLL_SECONDS,
        **kwargs: Any,
    ) -> None:
        if endpoint_config is not None:  # how Rasa builds a lock store named by its class
            settings = dict(endpoint_config.kwargs)
            poll_seconds = settings.pop("poll_seconds", poll_seconds)
            max_poll_seconds = settings.pop("max_poll_seconds", max_poll_seconds)
            kwargs = {"host": endpoint_config.url or "localhost", **settings, **kwargs}
        super().__init__(**kwargs)
        self.poll_seconds = float(poll_seconds)
        self.max_poll_seconds = float(max_poll_seconds)
        self._async: tuple[asyncio.AbstractEventLoop, redis.asyncio.Redis] | None = None

    def _async_redis(self) -> redis.asyncio.Redis:
        """An asyncio client with the synchronous client's settings, for the running loop
        (its connections belong to one loop)."""
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            pool = self.red.connection_pool
            accepted = set(inspect.signature(redis.asyncio.Redis.__init__).parameters)
            settings = {k: v for k, v in pool.connection_kwargs.items() if k in accepted}
            settings["ssl"] = issubclass(pool.connection_class, redis.SSLConnection)
            self._async = (loop, redis.asyncio.Redis(**settings))
        return self._async[1]

    async def _amodify(
        self, conversation_id: str, change: Callable[[TicketLock | None], TicketLock | None]
    ) -> TicketLock | None:
        """`_modify` with the asyncio client."""
        key = self.key_prefix + conversation_id
        async with self._async_redis().pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    serialised = await pipe.get(key)
                    current = TicketLock.from_dict(_loads(serialised)) if serialised else None
                    changed = change(current)
                    pipe.multi()  # type: ignore[no-untyped-call]  # unannotated in redis-py
                    if changed is None:
                        pipe.delete(key)
                    else:
                        pipe.set(key, changed.dumps())
                    await pipe.execute()
                    return changed
                except redis.WatchError:
                    continue

    async def _delete_if_unchanged(self, key: str, expected: str) -> bool:
        """Delete the lock if it is still exactly `expected` (one round trip)."""
        deleted = await self._async_redis().eval(_DELETE_IF_UNCHANGED, 1, key, expected)  # type: ignore[misc]  # redis-py's union of sync and async results
        return bool(deleted)

    async def _aget_lock(self, conversation_id: str) -> TicketLock | None:
        serialised = await self._async_redis().get(self.key_prefix + conversation_id)
        return TicketLock.from_dict(_loads(serialised)) if serialised else None

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = 1,
    ) -> AsyncIterator[TicketLock]:
        """Rasa's ticket lock, without blocking the event loop on Redis, polling in
        milliseconds (`wait_time_in_seconds` is ignored: every caller in Rasa passes the
        default of one second)."""
        key = self.key_prefix + conversation_id
        # Nobody else has the conversation (the usual case): create the lock holding our
        # ticket in one round trip, and delete it in one when the turn ends unless someone
        # joined meanwhile. (Each was a WATCH / GET / MULTI…EXEC transaction, plus a GET
        # before the turn: seven round trips per turn, each a wait of the event loop.)
        alone = self.create_lock(conversation_id)
        ticket = alone.issue_ticket(lock_lifetime)
        created = alone.dumps()
        try:
            first = bool(await self._async_redis().set(key, created, nx=True))
        except Exception as error:
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error
        if first:
            try:
                yield alone
            finally:
                if not await self._delete_if_unchanged(key, created):
                    await self._amodify(conversation_id, _without(ticket))
            return
        tickets: list[int] = []

        def issue(lock: TicketLock | None) -> TicketLock:
            lock = lock or self.create_lock(conversation_id)
            tickets.append(lock.issue_ticket(lock_lifetime))
            return lock

        try:
            issued = await self._amodify(conversation_id, issue)
        except Exception as error:
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error
        ticket = tickets[-1]  # the last attempt is the one that was stored
        try:
            if issued is not None and not issued.is_locked(ticket):
                yield issued  # served at once: no need to read the lock back
            else:
                yield await self._await_turn(conversation_id, ticket)
        finally:
            await self._amodify(conversation_id, _without(ticket))

    async def _await_turn(self, conversation_id: str, ticket: int) -> TicketLock:
        delay = self.poll_seconds
        cleaned = time.monotonic()
        while True:
            lock = await self._aget_lock(conversation_id)
            if not lock:  # expired and removed
                break
            if not lock.is_locked(ticket):
                return lock
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_poll_seconds)
            if time.monotonic() - cleaned >= EXPIRED_CLEANUP_SECONDS:
                await self._amodify(conversation_id, _drop_expired)
                cleaned = time.monotonic()
        raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")

    def _modify(
        self, conversation_id: str, change: Callable[[TicketLock | None], TicketLock | None]
    ) -> TicketLock | None:
        """Apply `change` to the stored lock in one transaction; it returns the lock to
        store, or None to delete it."""
        key = self.key_prefix + conversation_id

        def transaction(pipe: Any) -> TicketLock | None:
            serialised = pipe.get(key)
            current = TicketLock.from_dict(_loads(serialised)) if serialised else None
            changed = change(current)
            pipe.multi()
            if changed is None:
                pipe.delete(key)
            else:
                pipe.set(key, changed.dumps())
            return changed

        result: TicketLock | None = self.red.transaction(transaction, key, value_from_callable=True)
        return result

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        tickets: list[int] = []

        def issue(lock: TicketLock | None) -> TicketLock:
            lock = lock or self.create_lock(conversation_id)
            tickets.append(lock.issue_ticket(lock_lifetime))
            return lock

        try:
            self._modify(conversation_id, issue)
        except Exception as error:
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error
        return tickets[-1]  # the last attempt is the one that was stored

    def update_lock(self, conversation_id: str) -> None:
        self._modify(conversation_id, _drop_expired)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        self.cleanup(conversation_id, ticket_number)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Remove the ticket; delete the lock when nobody else waits (one transaction)."""

        self._modify(conversation_id, _without(ticket_number))


_DELETE_IF_UNCHANGED = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _without(ticket: int) -> Callable[[TicketLock | None], TicketLock | None]:
    """The change that ends a turn: remove its ticket, delete the lock if nobody waits."""

    def finish(lock: TicketLock | None) -> TicketLock | None:
        if lock is None:
            return None
        lock.remove_ticket_for(ticket)
        return lock if lock.is_someone_waiting() else None

    return finish


def _drop_expired(lock: TicketLock | None) -> TicketLock | None:
    if lock is None:
        return None
    lock.remove_expired_tickets()
    return lock


def _loads(serialised: bytes | str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(serialised)
    return loaded
