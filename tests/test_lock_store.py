"""rasa_ext.lock_store.FastRedisLockStore (issue #25): under contention on one conversation
the next turn starts within milliseconds of the previous one's end (Rasa's own store waits
a whole second), turns run one at a time in arrival order, and tickets issued at the same
moment by two workers are never lost. Against the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import json
import os
import socket

import pytest

from tests.test_rasa_ext import _rasa_python


def _redis_problem() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2) as connection:
            connection.sendall(b"PING\r\n")
            if not connection.recv(16).startswith(b"+PONG"):
                return "Redis at 127.0.0.1:6379 did not answer PING"
    except OSError as error:
        return f"Redis not reachable at 127.0.0.1:6379: {error!r}"
    return None


pytestmark = pytest.mark.skipif(_redis_problem() is not None, reason=_redis_problem() or "")

CONTENTION_CHECK = """
import asyncio, json, sys, threading, time
import redis
from rasa.core.lock_store import LockStore, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

prefix, db = sys.argv[1], int(sys.argv[2])

def fast():  # as Rasa builds it from endpoints.prod.yml
    return LockStore.create(EndpointConfig.from_dict({
        "type": "rasa_ext.lock_store.FastRedisLockStore", "url": "127.0.0.1",
        "port": 6379, "db": db, "key_prefix": prefix}))

async def gaps(stores, turns, hold=0.1):
    marks = []
    async def turn(store, i):
        await asyncio.sleep(0.01 * i)
        async with store.lock("c-2"):
            marks.append(("start", i, time.monotonic()))
            await asyncio.sleep(hold)
            marks.append(("end", i, time.monotonic()))
    began = time.monotonic()
    await asyncio.gather(*(turn(stores[i % len(stores)], i) for i in range(turns)))
    total = time.monotonic() - began
    order = [[kind, i] for kind, i, _ in marks]
    waits = [marks[k][2] - marks[k - 1][2] for k in range(1, len(marks))
             if marks[k][0] == "start"]
    return order, total, max(waits)

def race(store_a, store_b, each=100):
    tickets = []
    def issue(store):
        for _ in range(each):
            tickets.append(store.issue_ticket("c-3", 60))
    threads = [threading.Thread(target=issue, args=(s,)) for s in (store_a, store_b)]
    for t in threads: t.start()
    for t in threads: t.join()
    stored = store_a.get_lock("c-3")
    return len(tickets), len(set(tickets)), len(stored.tickets)

async def exclusive(stores, turns=30):
    inside, most, done = [0], [0], []
    async def turn(store, i):
        async with store.lock("c-4"):
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            await asyncio.sleep(0.002)
            inside[0] -= 1
            done.append(i)
    await asyncio.gather(*(turn(stores[i % 2], i) for i in range(turns)))
    return [most[0], sorted(done) == list(range(turns))]

async def main():
    a, b = fast(), fast()
    together = await exclusive([a, b])
    order, total, wait = await gaps([a, b], 3)
    stock = RedisLockStore(host="127.0.0.1", port=6379, db=db, key_prefix=prefix + "stock")
    _, stock_total, stock_wait = await gaps([stock], 2)
    issued, distinct, stored = race(a, b)
    for number in range(issued):  # tickets are numbered from 0
        (a, b)[number % 2].cleanup("c-3", number)
    left = redis.Redis(host="127.0.0.1", port=6379, db=db).keys(prefix + "*")
    print(json.dumps({"type": type(a).__name__, "order": order, "total": total,
                      "wait": wait, "stock_total": stock_total, "stock_wait": stock_wait,
                      "race": [issued, distinct, stored], "left": len(left),
                      "exclusive": together}))

asyncio.run(main())
"""


def test_fast_lock_store_serves_contending_turns_in_order_within_milliseconds() -> None:
    prefix = f"locktest{os.getpid()}"
    result = _rasa_python("-c", CONTENTION_CHECK, prefix, "12")
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["type"] == "FastRedisLockStore"
    # three turns of 100 ms on one conversation from two workers: one at a time, in order
    assert outcome["order"] == [
        ["start", 0],
        ["end", 0],
        ["start", 1],
        ["end", 1],
        ["start", 2],
        ["end", 2],
    ]
    assert outcome["wait"] < 0.05  # next turn starts within 50 ms of the previous end
    assert outcome["total"] < 0.5  # 3 × 100 ms of work
    # Rasa's own store, same test, two turns: the second waits a whole second
    assert outcome["stock_wait"] >= 0.8
    assert outcome["stock_total"] >= 1.0
    # 2 workers × 100 tickets at the same moment: none lost, none doubled
    assert outcome["race"] == [200, 200, 200]
    # 30 turns entering at once from two workers: never two inside, all done
    assert outcome["exclusive"] == [1, True]
    assert outcome["left"] == 0  # every lock deleted once nobody waits


ROUND_TRIPS_CHECK = """
import asyncio, json, sys
import redis.asyncio
from rasa.core.lock_store import LockStore
from rasa.utils.endpoints import EndpointConfig

prefix, db = sys.argv[1], int(sys.argv[2])
commands = []
original = redis.asyncio.Redis.execute_command

async def counted(self, *args, **options):
    commands.append(str(args[0]).upper())
    return await original(self, *args, **options)

redis.asyncio.Redis.execute_command = counted
store = LockStore.create(EndpointConfig.from_dict({
    "type": "rasa_ext.lock_store.FastRedisLockStore", "url": "127.0.0.1",
    "port": 6379, "db": db, "key_prefix": prefix}))

async def main():
    async with store.lock("alone"):
        inside = list(commands)
    alone = list(commands)
    commands.clear()
    async def second():
        await asyncio.sleep(0.01)
        async with store.lock("shared"):
            return "second"
    async def first():
        async with store.lock("shared"):
            await asyncio.sleep(0.05)
            return "first"
    order = await asyncio.gather(first(), second())
    left = await redis.asyncio.Redis(host="127.0.0.1", port=6379, db=db).keys(prefix + "*")
    print(json.dumps({"inside": inside, "alone": alone, "order": order, "left": len(left)}))

asyncio.run(main())
"""


def test_an_uncontended_turn_costs_two_redis_round_trips() -> None:
    """The usual turn (nobody else on the conversation): SET NX to take the lock, one
    compare-and-delete script to give it back (was seven round trips: two WATCH/GET/
    MULTI…EXEC transactions and a GET). A turn that finds the lock taken still waits."""
    prefix = f"locktrips{os.getpid()}"
    result = _rasa_python("-c", ROUND_TRIPS_CHECK, prefix, "12")
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["inside"] == ["SET"]
    assert outcome["alone"] == ["SET", "EVAL"]
    assert outcome["order"] == ["first", "second"]
    assert outcome["left"] == 0
