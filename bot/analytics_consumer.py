"""`python -m bot analytics-consumer`: Rasa's tracker events (RabbitMQ) → bot analytics.

Reads the queue Rasa's `PikaEventBroker` publishes to (RABBITMQ_* as in endpoints.prod.yml)
and stores turns, fallbacks and handoffs in the product database (`bot_events`, see
bot/domain/bot_analytics.py). A message is acknowledged only after its rows are committed,
so a crash redelivers it; its unique keys make the redelivery harmless. Refuses to start
when RabbitMQ or the database is unreachable; reconnects after an outage once running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain import bot_analytics, safe_json
from bot.storage.db import create_engine, create_session_factory

logger = logging.getLogger("bot.analytics")

PREFETCH = 200
DB_RETRY_SECONDS = 2.0


def broker_settings() -> dict[str, str]:
    return {
        "host": os.environ.get("RABBITMQ_HOST", "127.0.0.1"),
        "port": os.environ.get("RABBITMQ_PORT", "5672"),
        "login": os.environ.get("RABBITMQ_USER", "guest"),
        "password": os.environ.get("RABBITMQ_PASSWORD", "guest"),
        "queue": os.environ.get("RABBITMQ_QUEUE", "shopbot_rasa_events"),
        "exchange": os.environ.get("RABBITMQ_EXCHANGE", "shopbot-rasa-exchange"),
    }


async def handle(sessions: async_sessionmaker[AsyncSession], body: bytes) -> int:
    """Store one broker message's analytics rows; returns how many were new. A message is
    one event (Rasa's `PikaEventBroker`) or a JSON array of events, in order
    (`rasa_ext.event_broker.BatchingPikaEventBroker`): all its rows in one transaction."""
    try:
        payload: Any = safe_json.loads(body)
    except safe_json.BadJson as exc:
        logger.warning("%s Skipped: %r", exc.message, body[:200])
        return 0
    events = payload if isinstance(payload, list) else [payload]
    rows = [
        row
        for event in events
        if isinstance(event, dict)
        for row in bot_analytics.counted_events(event)
    ]
    if not rows:
        return 0
    async with sessions() as session, session.begin():
        return await bot_analytics.record(session, rows)


async def consume(settings: Settings, stop: asyncio.Event) -> None:
    import aio_pika

    broker = broker_settings()
    engine = create_engine(settings.database_url)
    sessions = create_session_factory(engine)
    async with engine.connect() as connection:  # refuse to start without the database
        await connection.execute(text("SELECT 1"))
    connection_ = await aio_pika.connect_robust(
        host=broker["host"],
        port=int(broker["port"]),
        login=broker["login"],
        password=broker["password"],
        timeout=10,
    )
    try:
        channel = await connection_.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        # Declared exactly as Rasa's PikaEventBroker declares them (else RabbitMQ refuses).
        exchange = await channel.declare_exchange(
            broker["exchange"], type=aio_pika.ExchangeType.FANOUT
        )
        queue = await channel.declare_queue(broker["queue"], durable=True)
        await queue.bind(exchange, "")
        logger.info("consuming %s (exchange %s)", broker["queue"], broker["exchange"])

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            while True:
                try:
                    await handle(sessions, message.body)
                    await message.ack()
                    return
                except SQLAlchemyError as exc:  # database outage: keep the message, retry
                    logger.warning("database unavailable (%s); retrying", exc)
                    await asyncio.sleep(DB_RETRY_SECONDS)

        await queue.consume(on_message)
        await stop.wait()
    finally:
        await connection_.close()
        await engine.dispose()


def main(settings: Settings) -> int:
    from bot.web.ops import configure_logging

    configure_logging(settings.log_format)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await consume(settings, stop)

    try:
        asyncio.run(run())
    except Exception as exc:  # broker or database unreachable at start
        logger.error("refusing to run: %s: %s", type(exc).__name__, exc)
        return 1
    return 0
