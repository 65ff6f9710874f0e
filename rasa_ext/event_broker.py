"""A RabbitMQ event broker that publishes a turn's events as one message, off the turn.

Rasa 3.6's `PikaEventBroker` publishes every tracker event as its own message: per event a
task, a deep copy of the event (`remove_parse_data`, for a debug log line), a JSON
encoding, an AMQP publish and its publisher confirm. A turn stores ~13 events, so that was
~13 messages per turn through the Rasa worker, RabbitMQ and the analytics consumer (one
acknowledgement and one database transaction each). Profiled at saturation (issue #25,
docs/benchmarks.md) the broker was ~12 % of a Rasa worker's Python time.

`BatchingPikaEventBroker` (endpoints.prod.yml, `event_broker.type`) keeps Rasa's exchange,
queues, connection and reconnection, but

* `publish` only appends the event to an in-memory FIFO and returns; one background task
  per worker publishes what has accumulated as **one message holding a JSON array** of
  events (at most `max_batch_events`), waits for RabbitMQ's publisher confirm, then sends
  the next. Nothing waits on a timer: an event that arrives while no publish is in flight
  goes out at once, and the events that arrive during a publish go out together right
  after it.
* **Nothing is dropped**: a batch that is not confirmed (RabbitMQ down, channel closed)
  goes back to the front of the FIFO, in order, and is retried every
  `retry_delay_in_seconds` until it is confirmed; `close()` publishes what is left first.
* **Order**: one FIFO and one publisher per worker, so events reach the queue in the order
  Rasa published them; a conversation's turns run one at a time (lock store), so its
  events keep their order within and across messages.

Trade-offs (docs/deploy.md): a consumer of the queue must read a message body that is a
JSON array of events (header `x-rasa-event-batch` carries their number; the analytics
consumer reads both forms). As with Rasa's own broker, the events are published in the
background: a worker killed (-9) between a turn and its publish loses at most the events
not yet confirmed (Rasa's broker loses its unfinished publish tasks the same way), while the
tracker store, which the turn waits for, has them all.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import Any

import aio_pika
from rasa.core.brokers.pika import PikaEventBroker
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

BATCH_HEADER = "x-rasa-event-batch"
DEFAULT_MAX_BATCH_EVENTS = 500
CLOSE_FLUSH_SECONDS = 10.0


class BatchingPikaEventBroker(PikaEventBroker):
    def __init__(
        self, *args: Any, max_batch_events: int | str = DEFAULT_MAX_BATCH_EVENTS, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_batch_events = max(1, int(max_batch_events))
        self._queue: deque[dict[str, Any]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._in_flight = 0  # events of the batch being published
        self.published_batches = 0

    @classmethod
    async def from_endpoint_config(
        cls,
        broker_config: EndpointConfig | None,
        event_loop: asyncio.AbstractEventLoop | None = None,
    ) -> BatchingPikaEventBroker | None:
        if broker_config is None:
            return None
        broker = cls(broker_config.url, **broker_config.kwargs, event_loop=event_loop)
        await broker.connect()
        return broker

    # ---- publishing -----------------------------------------------------------------------

    def publish(self, event: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        """Queue `event` for the background publisher (with `headers`: Rasa's own
        per-event publish, since a batch has one set of headers)."""
        if headers:
            super().publish(event, headers)
            return
        self._queue.append(event)
        self._start_publisher()
        assert self._wakeup is not None
        self._wakeup.set()

    def pending(self) -> int:
        """Events queued or in flight (not confirmed by RabbitMQ yet)."""
        return len(self._queue) + self._in_flight

    def _start_publisher(self) -> None:
        if self._publisher is not None and not self._publisher.done():
            return
        self._wakeup = asyncio.Event()
        self._publisher = asyncio.get_running_loop().create_task(self._publish_forever())

    async def _publish_forever(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                if not await self._publish_next_batch():
                    await asyncio.sleep(self._retry_delay_in_seconds)

    async def _publish_next_batch(self) -> bool:
        """Publish the oldest queued events as one message; True once confirmed, else they
        are back at the front of the queue, in order."""
        count = min(len(self._queue), self.max_batch_events)
        batch = [self._queue.popleft() for _ in range(count)]
        self._in_flight = count
        try:
            if self._exchange is None:
                raise ConnectionError("not connected to RabbitMQ")
            await self._exchange.publish(self._batch_message(batch), "")
        except Exception as error:  # RabbitMQ down or the channel closed: retry later
            self._queue.extendleft(reversed(batch))
            logger.warning(
                "could not publish %d events to RabbitMQ (%s: %s); %d kept, retrying",
                count,
                type(error).__name__,
                error,
                len(self._queue),
            )
            return False
        finally:
            self._in_flight = 0
        self.published_batches += 1
        return True

    def _batch_message(self, batch: list[dict[str, Any]]) -> aio_pika.Message:
        return aio_pika.Message(
            json.dumps(batch).encode(),
            headers={BATCH_HEADER: len(batch)},
            content_type="application/json",
            app_id=self.rasa_environment,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )

    def _publish_unpublished_messages(self, *_: Any, **__: Any) -> None:
        """Rasa's reconnect callback: wake the publisher up (its retry is queued)."""
        super()._publish_unpublished_messages()
        if self._wakeup is not None:
            self._wakeup.set()

    async def flush(self, timeout: float = CLOSE_FLUSH_SECONDS) -> bool:
        """Wait until every queued event is confirmed (True), or `timeout` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pending() and loop.time() < deadline:
            if self._wakeup is not None:
                self._wakeup.set()
            await asyncio.sleep(0.01)
        return not self.pending()

    async def close(self) -> None:
        if not await self.flush():
            logger.error("closing with %d events not published to RabbitMQ", self.pending())
        if self._publisher is not None:
            self._publisher.cancel()
        await super().close()
