"""Operations: /healthz (liveness), /readyz (readiness), /metrics (Prometheus), structured logs.

`setup_ops(app)` wires all of it (and the Redis fan-out between web replicas when
REDIS_URL is set). Every log line of the chat handling carries the conversation id
(a context variable set by the WebSocket handler; `LOG_FORMAT=json` for JSON lines).
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import Integer, text

from bot.domain.enums import StaffRole
from bot.storage.models import UTCDateTime
from bot.web.auth import load_staff_session
from bot.web.errors import json_error
from bot.web.hub import Fanout
from bot.web.keys import ENGINE, HUB, RASA, SETTINGS, STAFF_HUB

# The conversation a log line is about (set per WebSocket task by bot/web/chat.py).
conversation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "conversation_id", default=None
)
REPLICA = os.environ.get("REPLICA_NAME", "web")
# Rasa reads this conversation on every readiness check (the analytics ignore "preflight-").
READYZ_SENDER = "preflight-readyz"
CHECK_TIMEOUT = 3.0

logger = logging.getLogger(__name__)


# --- logs -------------------------------------------------------------------------------


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.conversation_id = conversation_id_var.get()
        record.replica = REPLICA
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "replica": getattr(record, "replica", REPLICA),
            "conversation_id": getattr(record, "conversation_id", None),
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


KEY_VALUE_FORMAT = (
    "%(asctime)s level=%(levelname)s logger=%(name)s replica=%(replica)s "
    "conversation_id=%(conversation_id)s %(message)s"
)


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """JSON lines (`json`) or key=value text; both with the conversation id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(KEY_VALUE_FORMAT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


# --- metrics ----------------------------------------------------------------------------


@dataclass
class Metrics:
    registry: CollectorRegistry
    turns: Counter
    turn_seconds: Histogram
    errors: Counter
    websockets: Gauge
    # Shop events (issue #25): the queue as the database holds it (all replicas), read when
    # /metrics is scraped, and what this process's worker applied.
    events_queue_depth: Gauge
    events_oldest_pending: Gauge
    events_applied: Counter
    events_apply_lag: Histogram

    def observe_event_applied(self, status: str, received_at: datetime | None) -> None:
        self.events_applied.labels(status=status).inc()
        if received_at is not None:
            lag = (datetime.now(timezone.utc) - received_at).total_seconds()
            self.events_apply_lag.observe(max(0.0, lag))

    def observe_turn(self, outcome: str, seconds: float) -> None:
        self.turns.labels(outcome=outcome).inc()
        if outcome == "ok":
            self.turn_seconds.observe(seconds)
        else:
            self.errors.labels(kind=outcome).inc()

    def error(self, kind: str) -> None:
        self.errors.labels(kind=kind).inc()


def create_metrics() -> Metrics:
    # One registry per app: tests create many apps in one process.
    registry = CollectorRegistry()
    return Metrics(
        registry=registry,
        turns=Counter(
            "shopbot_chat_turns",
            "Customer turns relayed to Rasa, by outcome",
            ["outcome"],
            registry=registry,
        ),
        turn_seconds=Histogram(
            "shopbot_chat_turn_seconds",
            "Time from relaying a customer message to Rasa's reply",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30),
            registry=registry,
        ),
        errors=Counter("shopbot_chat_errors", "Chat errors by kind", ["kind"], registry=registry),
        websockets=Gauge(
            "shopbot_open_websockets", "Open customer chat WebSockets", registry=registry
        ),
        events_queue_depth=Gauge(
            "shopbot_events_queue_depth",
            "Shop events accepted and not applied yet (pending, all web replicas)",
            registry=registry,
        ),
        events_oldest_pending=Gauge(
            "shopbot_events_apply_lag_seconds",
            "Age of the oldest pending shop event (0 when the queue is empty): the apply lag now",
            registry=registry,
        ),
        events_applied=Counter(
            "shopbot_events_applied",
            "Shop events finished by this process's worker, by status",
            ["status"],
            registry=registry,
        ),
        events_apply_lag=Histogram(
            "shopbot_events_applied_lag_seconds",
            "Time from accepting a shop event to applying it (this process's worker)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=registry,
        ),
    )


METRICS = web.AppKey("metrics", Metrics)


def count_error(app: web.Application, kind: str) -> None:
    metrics = app.get(METRICS)
    if metrics is not None:
        metrics.error(kind)


def on_internal_port(request: web.Request) -> bool:
    """Whether the request came in on the internal ops port (OPS_PORT), not the public one."""
    port = request.config_dict[SETTINGS].ops_port
    transport = request.transport
    if not port or transport is None:
        return False
    sockname = transport.get_extra_info("sockname")
    return isinstance(sockname, tuple) and len(sockname) >= 2 and sockname[1] == port


def _metrics_token_ok(request: web.Request) -> bool:
    expected = request.config_dict[SETTINGS].metrics_token
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(sent.strip().encode(), expected.encode())


async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus exposition: on the internal port, or with `Bearer METRICS_TOKEN` (issue #22)."""
    if not (on_internal_port(request) or _metrics_token_ok(request)):
        response = json_error(
            401,
            "unauthorized",
            "Metrics need Authorization: Bearer <METRICS_TOKEN>, or the internal port (OPS_PORT).",
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    await _refresh_event_gauges(request.app)
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


_EVENT_QUEUE = text(
    # Both read the partial index ix_shop_events_pending (pending rows only).
    "SELECT count(*) AS depth, min(received_at) AS oldest FROM shop_events WHERE status = 'pending'"
).columns(depth=Integer, oldest=UTCDateTime)


async def _refresh_event_gauges(app: web.Application) -> None:
    """The events queue's depth and the age of its oldest event, from the database (so every
    replica reports the same queue); left as they were when the database does not answer."""
    metrics = app[METRICS]

    async def read() -> None:
        async with app[ENGINE].connect() as connection:
            row = (await connection.execute(_EVENT_QUEUE)).one()
        metrics.events_queue_depth.set(row.depth)
        age = 0.0
        if row.oldest is not None:
            age = max(0.0, (datetime.now(timezone.utc) - row.oldest).total_seconds())
        metrics.events_oldest_pending.set(age)

    try:
        await asyncio.wait_for(read(), CHECK_TIMEOUT)
    except Exception as exc:
        logging.getLogger(__name__).warning("metrics: events queue not read (%r)", exc)


# --- health and readiness ---------------------------------------------------------------


async def _database_ok(app: web.Application) -> None:
    async with app[ENGINE].connect() as connection:
        await connection.execute(text("SELECT 1"))


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves requests and reaches its database."""
    try:
        await asyncio.wait_for(_database_ok(request.app), CHECK_TIMEOUT)
    except Exception:
        return json_error(503, "database_unavailable", "The database is not reachable.")
    rasa_ready = await request.app[RASA].is_ready()
    return web.json_response({"status": "ok", "rasa": "ready" if rasa_ready else "unavailable"})


async def _action_server_ok(app: web.Application) -> None:
    url = app[SETTINGS].action_server_url.rsplit("/webhook", 1)[0] + "/health"
    http = app[RASA].http
    async with http.get(url, timeout=CHECK_TIMEOUT) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")


async def _rasa_worker_ok(app: web.Application, url: str) -> None:
    rasa = app[RASA]
    if not await rasa.worker_ready(url):
        raise RuntimeError("no model loaded or not reachable")
    if not await rasa.tracker_store_ok(url, READYZ_SENDER):
        raise RuntimeError("its tracker store is not readable")


async def _redis_ok(app: web.Application) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(
        app[SETTINGS].redis_url or "",
        socket_connect_timeout=CHECK_TIMEOUT,
        socket_timeout=CHECK_TIMEOUT,
    )
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _outcome(check: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(check, CHECK_TIMEOUT + 1)
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {exc}".rstrip(": ")
    return "ok"


async def _may_see_details(request: web.Request) -> bool:
    if on_internal_port(request):
        return True
    found = await load_staff_session(request)
    return found is not None and found[0].role is StaffRole.admin


async def readyz(request: web.Request) -> web.Response:
    """Readiness: database, Rasa (every worker; at least one must be usable, with its
    tracker store), the action server and, when configured, Redis. 503 when not ready.

    The public port answers only ready / not ready; which check failed and why (internal
    addresses, error texts) only on the internal port or to an admin's session (issue #22).
    """
    app = request.app
    checks: dict[str, Awaitable[None]] = {
        "database": _database_ok(app),
        "action_server": _action_server_ok(app),
    }
    for url in app[RASA].urls:
        checks[f"rasa {url}"] = _rasa_worker_ok(app, url)
    if app[SETTINGS].redis_url:
        checks["redis"] = _redis_ok(app)
    started = time.monotonic()
    results = dict(
        zip(checks, await asyncio.gather(*(_outcome(c) for c in checks.values())), strict=True)
    )
    rasa_ok = any(v == "ok" for k, v in results.items() if k.startswith("rasa "))
    failed = [k for k, v in results.items() if v != "ok" and not k.startswith("rasa ")]
    if not rasa_ok:
        failed.append("rasa (no worker usable)")
    body: dict[str, Any] = {
        "status": "ready" if not failed else "not_ready",
        "checks": results,
        "seconds": round(time.monotonic() - started, 3),
    }
    details = await _may_see_details(request)
    if failed:
        message = "Failed: " + ", ".join(failed) if details else "Not ready."
        body["error"] = {"code": "not_ready", "message": message}
    if not details:
        body = {k: v for k, v in body.items() if k in ("status", "error")}
    response = web.json_response(body, status=503 if failed else 200)
    response.headers["Cache-Control"] = "no-store"
    return response


# --- wiring -----------------------------------------------------------------------------


async def _observe_turns(app: web.Application) -> AsyncIterator[None]:
    # Runs after the Rasa client exists (cleanup contexts run in order).
    app[RASA].observer = app[METRICS].observe_turn
    yield


def setup_fanout(app: web.Application) -> None:
    """With REDIS_URL set, connect this replica's hubs to the others through Redis."""
    url = app[SETTINGS].redis_url
    if not url:
        return

    async def fanout(app: web.Application) -> AsyncIterator[None]:
        from redis.asyncio import Redis

        redis = Redis.from_url(url, socket_connect_timeout=3, health_check_interval=10)
        app[HUB].fanout = app[STAFF_HUB].fanout = bus = Fanout(redis)
        ready = asyncio.Event()
        task = asyncio.create_task(bus.listen(app[HUB], app[STAFF_HUB], ready))
        try:
            await asyncio.wait_for(ready.wait(), 5)
        except asyncio.TimeoutError:
            logger.warning(
                "fan-out: Redis at %s not subscribed yet; retrying in the background", url
            )
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        app[HUB].fanout = app[STAFF_HUB].fanout = None
        await redis.aclose()

    app.cleanup_ctx.append(fanout)


def setup_ops(app: web.Application) -> None:
    metrics = create_metrics()
    metrics.websockets.set_function(lambda: float(app[HUB].total()))
    app[METRICS] = metrics
    app.cleanup_ctx.append(_observe_turns)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    setup_fanout(app)
