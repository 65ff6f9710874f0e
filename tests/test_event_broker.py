"""rasa_ext.event_broker: a turn's events published as one message, in order, none lost
(checked in the rasa environment via a subprocess, as tests/test_rasa_ext.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_rasa_ext import _rasa_python

BATCH_CHECK = """
import asyncio, json
from rasa_ext.event_broker import BATCH_HEADER, BatchingPikaEventBroker

class Exchange:
    def __init__(self, failures):
        self.failures = failures
        self.messages = []
    async def publish(self, message, routing_key):
        await asyncio.sleep(0.01)  # the publisher confirm's round trip
        if self.failures:
            self.failures -= 1
            raise ConnectionError("channel closed")
        self.messages.append((message.headers[BATCH_HEADER], json.loads(message.body)))

async def main():
    broker = BatchingPikaEventBroker("localhost", "guest", "guest", queues=["q"],
                                     retry_delay_in_seconds=0.02, max_batch_events=8)
    broker._exchange = exchange = Exchange(failures=2)
    sent = []
    for turn in range(6):  # six turns of two conversations, 5 events each
        for n in range(5):
            event = {"sender_id": f"c{turn % 2}", "event": "action", "n": turn * 5 + n}
            sent.append(event)
            broker.publish(event)
        await asyncio.sleep(0.004)
    flushed = await broker.flush(timeout=5)
    got = [event for _, batch in exchange.messages for event in batch]
    print(json.dumps({
        "flushed": flushed,
        "same_order_none_lost": got == sent,
        "messages": len(exchange.messages),
        "headers_match": all(h == len(b) for h, b in exchange.messages),
        "max_batch": max(len(b) for _, b in exchange.messages),
        "pending": broker.pending(),
    }))

asyncio.run(main())
"""


def test_batches_keep_every_event_in_order_through_failed_publishes(tmp_path: Path) -> None:
    """30 events of two conversations while the first two publishes fail (RabbitMQ
    unreachable): every event reaches the exchange once and in the order published, in far
    fewer messages than events, none over `max_batch_events`; `flush` waits for them."""
    result = _rasa_python("-c", BATCH_CHECK)
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    messages = outcome.pop("messages")
    assert outcome == {
        "flushed": True,
        "same_order_none_lost": True,
        "headers_match": True,
        "max_batch": 8,
        "pending": 0,
    }
    assert 4 <= messages <= 10  # Rasa's broker: 30 messages


TRACKER_CHECK = """
import asyncio, json, sys
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa_ext.event_broker import BatchingPikaEventBroker
from rasa_ext.tracker_store import StrictSQLTrackerStore

class Exchange:
    def __init__(self):
        self.messages = []
    async def publish(self, message, routing_key):
        self.messages.append(json.loads(message.body))

async def main(db):
    broker = BatchingPikaEventBroker("localhost", "guest", "guest", queues=["q"])
    broker._exchange = exchange = Exchange()
    store = StrictSQLTrackerStore(Domain.empty(), dialect="sqlite", db=db, event_broker=broker)
    tracker = DialogueStateTracker("c-1", [])
    for event in (ActionExecuted("action_listen"), UserUttered("hi"), ActionExecuted("utter_greet"),
                  BotUttered("hello"), ActionExecuted("action_listen")):
        tracker.update(event)
    await store.save(tracker)
    await broker.flush()
    stored = await store.retrieve_full_tracker("c-1")
    print(json.dumps({"messages": len(exchange.messages),
                      "published": exchange.messages[0],
                      "stored": [dict(e.as_dict(), sender_id="c-1") for e in stored.events]}))

asyncio.run(main(sys.argv[1]))
"""


def test_a_saved_turn_is_one_message_with_the_stored_events(tmp_path: Path) -> None:
    """The tracker store publishes a turn's events through the batching broker as one
    message holding exactly the events it stored, each with the conversation id."""
    result = _rasa_python("-c", TRACKER_CHECK, str(tmp_path / "t.db"))
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["messages"] == 1
    assert [e["event"] for e in outcome["published"]] == [
        "action",
        "user",
        "action",
        "bot",
        "action",
    ]
    assert outcome["published"] == outcome["stored"]
