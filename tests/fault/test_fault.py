"""Fault test of the production profile (issue #8): 200 simulated customers on two web
replicas while Rasa, an action server replica and PostgreSQL are killed (-9) and restarted.
The customers connect through nginx, as in a deployment, and Rasa reaches the action
servers through it (issue #25: deploy/nginx.conf, bot/proxy.py); a last full conversation
runs on each replica directly and through nginx.

Afterwards: every customer message got the bot's reply or the clear retry message; every
survey answer the bot acknowledged is in the database exactly once (and no answer twice);
every process is alive and both replicas are ready. Figures are printed (pytest -s, or
in the report's captured output).

Its own PostgreSQL cluster (tests/fault/pg_cluster.py); Redis database 9 and a RabbitMQ
queue of its own on the machine's servers. Sizes: FAULT_CUSTOMERS (200), FAULT_THINK_MIN /
FAULT_THINK_MAX (seconds between a customer's messages), FAULT_SURVEY_ANSWERS (25: survey
answers acknowledged before the load stops). The faults follow the load's progress, not a
clock (CHAOS_* below).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from bench.ws import CLOSED, read_frames
from bot.config import PROJECT_ROOT
from bot.launcher import MODEL, ProdPorts, Stack, free_port, prepare_database, start_prod
from bot.storage.db import create_engine
from tests.fault.pg_cluster import Cluster, create_cluster, postgres_bin, remove

pytestmark = [
    pytest.mark.fault,
    pytest.mark.timeout(1800),  # minutes on an idle machine; a busy one loads Rasa slowly
    pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL server binaries not installed"),
    pytest.mark.skipif(not MODEL.exists(), reason="no trained model (make train)"),
]

CUSTOMERS = int(os.environ.get("FAULT_CUSTOMERS", "200"))
THINK = (
    float(os.environ.get("FAULT_THINK_MIN", "30")),
    float(os.environ.get("FAULT_THINK_MAX", "60")),
)
# The faults wait for conditions, not fixed times (they were 40 s, 30 s, 30 s and 90 s of
# sleeping): the first kill once CHAOS_START_TURNS customer turns were acknowledged (customers
# are mid-conversation); the next kill once CHAOS_GAP_TURNS turns sent after the previous
# kill were acknowledged (the degraded stack serves) or after CHAOS_GAP seconds; after the
# last recovery the load goes on until CHAOS_AFTER_TURNS turns sent after it and
# SURVEY_ANSWERS survey answers in all were acknowledged, at most CHAOS_AFTER seconds.
CHAOS_START_TURNS, CHAOS_GAP_TURNS, CHAOS_AFTER_TURNS = 40, 10, 30
SURVEY_ANSWERS = int(os.environ.get("FAULT_SURVEY_ANSWERS", "25"))
CHAOS_START_TIMEOUT, CHAOS_GAP, CHAOS_AFTER = 180.0, 30.0, 240.0
REPLY_TIMEOUT = 60.0  # a message without any answer for this long is lost
# A Rasa worker loads its model in about 30 s on an idle machine, minutes on a busy one.
RESTART_TIMEOUT = 420.0
QUIET = 0.4  # seconds without frames that end a turn after its first answer
RETRY_TEXT = "please try again in a moment"
UNAVAILABLE_TEXT = "can't reach our order system"
COMMENT = "the parcel came quickly, thanks"
# (step, customer text, fragment of the bot's reply that acknowledges it)
SCRIPT = (
    ("where", "where is my order", "order number"),
    ("order", "{order}", "email"),
    ("email", "{email}", "how satisfied"),
    ("score", "4", "anything you'd like to add"),
    ("comment", COMMENT, "thank you for your feedback"),
)


@dataclass
class Sent:
    step: str
    at: float
    outcome: str = "lost"  # bot_reply | retry | closed | lost
    acknowledged: bool = False
    message_id: int | None = None  # the stored customer message (ack frame)
    latency: float | None = None


@dataclass
class Run:
    sent: list[Sent] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    connect_errors: Counter[str] = field(default_factory=Counter)
    conversations: int = 0
    kills: dict[str, float] = field(default_factory=dict)  # name → time.monotonic() of kill
    restarts: dict[str, float] = field(default_factory=dict)  # name → seconds until healthy
    waits: list[str] = field(default_factory=list)  # how long each condition of _chaos took


# --- the stack ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    pg = create_cluster()
    try:
        yield pg
    finally:
        remove(pg)


@pytest.fixture(scope="module")
def stack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tag = uuid.uuid4().hex[:8]
    env = {
        "DATABASE_URL": f"{cluster.url}/shopbot",
        "RASA_TRACKER_DB_PORT": str(cluster.port),
        "RASA_TRACKER_DB_NAME": "shopbot_tracker",
        "REDIS_URL": "redis://127.0.0.1:6379/9",
        "RASA_LOCK_REDIS_DB": "10",
        "RASA_LOCK_KEY_PREFIX": f"fault{tag}",
        "RABBITMQ_QUEUE": f"fault_{tag}",
        "RABBITMQ_EXCHANGE": f"fault-{tag}",
        "SURVEY_FATIGUE_DAYS": "0",
        # Every scripted conversation ends in its CSAT, also for a customer who answered one
        # minutes ago (the transactional rule of SPEC §6 would skip it).
        "TRANSACTIONAL_SURVEY_QUIET_HOURS": "0",
        "RATE_LIMIT_MESSAGES": "1000",
        # Every scripted customer is 127.0.0.1: the per-address limits (issue #22, tested in
        # test_client_limits.py) would stop the load these faults are measured under.
        "CLIENT_NEW_CONVERSATIONS": "0",
        "CLIENT_WEBSOCKETS": "0",
    }
    ports = ProdPorts(
        web=(free_port(), free_port()),
        rasa=(free_port(), free_port()),
        actions=(free_port(), free_port()),
        actions_balancer=free_port(),
        proxy=free_port(),
    )
    os.environ.update(
        {
            k: v
            for k, v in env.items()
            if k in ("SURVEY_FATIGUE_DAYS", "TRANSACTIONAL_SURVEY_QUIET_HOURS")
        }
    )
    from bot.launcher import preflight, prod_environment

    preflight(prod_environment(env))  # creates the databases in our cluster
    prepare_database(env["DATABASE_URL"])
    started = time.monotonic()
    logs = PROJECT_ROOT / "var" / "fault" / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    running = start_prod(ports, env=env, log_dir=logs)
    running.prod_ports = ports  # type: ignore[attr-defined]
    running.database_url = env["DATABASE_URL"]  # type: ignore[attr-defined]
    print(
        f"\nproduction profile healthy after {time.monotonic() - started:.0f} s; logs {running.log_dir}"
    )
    try:
        yield running
    finally:
        running.stop()
        _delete_queue(env["RABBITMQ_QUEUE"], env["RABBITMQ_EXCHANGE"])


def _delete_queue(queue: str, exchange: str) -> None:
    async def delete() -> None:
        import aio_pika

        connection = await aio_pika.connect(host="127.0.0.1", login="guest", password="guest")
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(queue)
            await channel.exchange_delete(exchange)

    try:
        asyncio.run(delete())
    except Exception as exc:  # cleanup only
        print(f"could not delete the test queue {queue}: {exc}")


# --- simulated customers -------------------------------------------------------------------


async def _next(
    frames: asyncio.Queue[tuple[float, dict[str, Any]]], timeout: float
) -> dict[str, Any] | None:
    try:
        return (await asyncio.wait_for(frames.get(), max(timeout, 0.001)))[1]
    except asyncio.TimeoutError:
        return None


async def _turn(
    ws: aiohttp.ClientWebSocketResponse[bool],
    frames: asyncio.Queue[tuple[float, dict[str, Any]]],
    sent: Sent,
    text_: str,
    expected: str,
) -> None:
    try:
        await ws.send_json({"type": "message", "text": text_, "client_id": uuid.uuid4().hex})
    except (aiohttp.ClientError, ConnectionError, RuntimeError):
        sent.outcome = "closed"
        return
    deadline = sent.at + REPLY_TIMEOUT
    texts: list[str] = []
    while True:
        wait = (
            min(deadline - time.monotonic(), QUIET)
            if sent.outcome != "lost"
            else deadline - time.monotonic()
        )
        frame = await _next(frames, wait)
        if frame is None:
            break
        if frame is CLOSED:
            if sent.outcome == "lost":
                sent.outcome = "closed"
            break
        kind = frame.get("type")
        if kind == "ack":
            sent.message_id = frame.get("id")
        elif kind == "error":
            message = str((frame.get("error") or {}).get("message", "")).lower()
            sent.outcome = (
                "retry" if RETRY_TEXT in message else f"error:{frame['error'].get('code')}"
            )
            break
        elif kind == "message" and frame.get("sender") == "system":
            sent.outcome = (
                "retry" if RETRY_TEXT in str(frame.get("text", "")).lower() else "system_other"
            )
            break
        elif kind == "message" and frame.get("sender") == "bot":
            texts.append(str(frame.get("text", "")).lower())
            if sent.outcome == "lost":
                sent.outcome = "bot_reply"
                sent.latency = time.monotonic() - sent.at
    sent.acknowledged = sent.outcome == "bot_reply" and any(expected in t for t in texts)
    if sent.outcome == "bot_reply" and any(UNAVAILABLE_TEXT in t for t in texts):
        sent.outcome = "bot_reply_unavailable"  # the action could not reach the database


async def _conversation(
    http: aiohttp.ClientSession, url: str, run: Run, rng: random.Random, pair: tuple[str, str]
) -> None:
    try:
        ws = await http.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=5))
    except (aiohttp.ClientError, OSError) as exc:
        run.connect_errors[type(exc).__name__] += 1
        await asyncio.sleep(1)
        return
    frames: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
    reader = asyncio.create_task(read_frames(ws, frames, time.monotonic))
    try:
        await ws.send_json({"type": "hello", "token": None})
        frame = await _next(frames, 30)
        if frame is None or frame.get("type") != "session":
            run.connect_errors["hello_refused"] += 1
            await asyncio.sleep(1)
            return
        run.conversations += 1
        for number, (step, template, expected) in enumerate(SCRIPT):
            # A customer who opens the chat types at once; later answers take thinking.
            if number and await _stopped(run, rng.uniform(*THINK)):
                return
            if run.stop.is_set():
                return
            sent = Sent(step, time.monotonic())
            run.sent.append(sent)
            await _turn(ws, frames, sent, template.format(order=pair[0], email=pair[1]), expected)
            if not sent.acknowledged:
                return  # the conversation's state is unknown now: start a new one
    finally:
        reader.cancel()
        await ws.close()


async def _stopped(run: Run, seconds: float) -> bool:
    """Sleep `seconds`, or less when the run stops (then True)."""
    try:
        await asyncio.wait_for(run.stop.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True


async def _customer(
    number: int,
    http: aiohttp.ClientSession,
    urls: list[str],
    run: Run,
    pairs: list[tuple[str, str]],
) -> None:
    rng = random.Random(number)
    if await _stopped(run, rng.uniform(0, THINK[1])):  # customers arrive over a while
        return
    while not run.stop.is_set() and not http.closed:
        await _conversation(http, urls[number % len(urls)], run, rng, rng.choice(pairs))


# --- faults ---------------------------------------------------------------------------------


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def _wait_ready(urls: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not all(await asyncio.gather(*(asyncio.to_thread(_ready, u) for u in urls))):
        assert time.monotonic() < deadline, f"not ready after {timeout} s: {urls}"
        await asyncio.sleep(0.5)


async def _restart(stack: Stack, run: Run, name: str) -> None:
    """Start a killed process again (as a supervisor would: retried if it exits early)."""
    for attempt in range(3):
        try:
            seconds = await asyncio.to_thread(stack.restart, name, RESTART_TIMEOUT)
        except SystemExit:
            if attempt == 2:
                raise
            continue
        run.restarts[name] = time.monotonic() - run.kills[name] if attempt else seconds
        return


def _acknowledged_since(run: Run, since: float) -> int:
    return sum(1 for s in run.sent if s.at >= since and s.acknowledged)


def _survey_answers(run: Run) -> int:
    return sum(1 for s in run.sent if s.step in ("score", "comment") and s.acknowledged)


async def _until(run: Run, condition: Any, timeout: float, what: str) -> None:
    """Wait until `condition()` holds, at most `timeout` seconds (then say so and go on)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started >= timeout:
            run.waits.append(f"{what}: not reached after {timeout:.0f} s, went on")
            return
        await asyncio.sleep(0.2)
    run.waits.append(f"{what}: after {time.monotonic() - started:.1f} s")


async def _chaos(stack: Stack, cluster: Cluster, run: Run, health_urls: list[str]) -> None:
    """kill -9 Rasa, then an action server replica, then PostgreSQL; each is restarted at
    once (a Rasa worker takes a while to load its model, meanwhile the next fault comes)."""
    await _until(  # customers are mid-conversation
        run,
        lambda: _acknowledged_since(run, 0) >= CHAOS_START_TURNS,
        CHAOS_START_TIMEOUT,
        f"{CHAOS_START_TURNS} turns acknowledged before the first kill",
    )
    restarts = []
    for name in ("rasa-1", "actions-2"):
        killed = run.kills[name] = time.monotonic()
        await asyncio.to_thread(stack.kill, name)
        restarts.append(asyncio.create_task(_restart(stack, run, name)))
        await _until(  # the rest of the stack serves meanwhile
            run,
            lambda k=killed: _acknowledged_since(run, k) >= CHAOS_GAP_TURNS,
            CHAOS_GAP,
            f"{CHAOS_GAP_TURNS} turns acknowledged after the kill of {name}",
        )
    run.kills["postgresql"] = time.monotonic()
    cluster.kill9()
    await asyncio.sleep(2)  # an outage, not a blip
    await asyncio.to_thread(cluster.start)
    await _wait_ready(health_urls)  # both web replicas reach the database again
    run.restarts["postgresql"] = time.monotonic() - run.kills["postgresql"]
    await asyncio.gather(*restarts)
    recovered = time.monotonic()
    await _until(  # customers continue on the recovered stack
        run,
        lambda: (
            _acknowledged_since(run, recovered) >= CHAOS_AFTER_TURNS
            and _survey_answers(run) >= SURVEY_ANSWERS
        ),
        CHAOS_AFTER,
        f"{CHAOS_AFTER_TURNS} turns after the recovery and {SURVEY_ANSWERS} survey answers",
    )
    run.stop.set()


# --- checks -----------------------------------------------------------------------------


async def _pairs(database_url: str) -> list[tuple[str, str]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT o.number, c.email FROM orders o JOIN customers c ON c.id = o.customer_id "
                    "WHERE c.email IS NOT NULL AND NOT c.is_anonymous ORDER BY o.number"
                )
            )
            return [(str(a), str(b)) for a, b in rows]
    finally:
        await engine.dispose()


async def _feedback(database_url: str) -> tuple[dict[int, str], Counter[tuple[str, str]]]:
    """(customer message id → conversation id, feedback rows per (conversation, kind))."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            messages: dict[Any, Any] = dict(
                (
                    await connection.execute(
                        text("SELECT id, conversation_id FROM messages WHERE sender = 'customer'")
                    )
                )
                .tuples()
                .all()
            )
            rows = (
                await connection.execute(
                    text("SELECT conversation_id, kind FROM feedback WHERE source = 'chat_survey'")
                )
            ).all()
            return messages, Counter((str(c), str(k)) for c, k in rows)
    finally:
        await engine.dispose()


def _recovery(run: Run, name: str) -> str:
    """Seconds from the kill to the first acknowledged customer turn sent after it."""
    killed = run.kills[name]
    after = [
        s.at + (s.latency or 0) - killed for s in run.sent if s.at >= killed and s.acknowledged
    ]
    return f"{min(after):.1f} s" if after else "never"


def _report(run: Run, seconds: float) -> list[str]:
    outcomes = Counter(s.outcome for s in run.sent)
    latencies = sorted(s.latency for s in run.sent if s.latency is not None)
    p50 = latencies[len(latencies) // 2] if latencies else float("nan")
    p95 = latencies[int(len(latencies) * 0.95)] if latencies else float("nan")
    lines = [
        f"fault run: {CUSTOMERS} customers, think {THINK[0]:g}–{THINK[1]:g} s, {seconds:.0f} s, "
        f"{run.conversations} conversations, {len(run.sent)} customer messages ({len(run.sent) / seconds:.1f}/s)",
        f"  outcomes: {dict(outcomes)}; acknowledged {sum(s.acknowledged for s in run.sent)}",
        f"  reply latency p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms; connect errors {dict(run.connect_errors)}",
    ]
    lines += [f"  waited for {wait}" for wait in run.waits]
    for name in run.kills:
        lines.append(
            f"  kill -9 {name}: back up (healthy) after {run.restarts.get(name, float('nan')):.1f} s; "
            f"first acknowledged customer turn after the kill: {_recovery(run, name)}"
        )
    return lines


async def test_customers_lose_nothing_when_rasa_actions_and_postgres_are_killed(
    stack: Stack, cluster: Cluster
) -> None:
    ports: ProdPorts = stack.prod_ports  # type: ignore[attr-defined]
    database_url: str = stack.database_url  # type: ignore[attr-defined]
    pairs = await _pairs(database_url)
    assert pairs
    ws_urls = [f"ws://127.0.0.1:{p}/ws" for p in ports.web]
    through_nginx = f"ws://127.0.0.1:{ports.proxy}/ws"
    ready_urls = [f"http://127.0.0.1:{p}/readyz" for p in ports.web]
    run = Run()
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        customers = [
            asyncio.create_task(_customer(n, http, [through_nginx], run, pairs))
            for n in range(CUSTOMERS)
        ]
        try:
            await _chaos(
                stack, cluster, run, [u.replace("/readyz", "/healthz") for u in ready_urls]
            )
        finally:
            run.stop.set()
            done, pending = await asyncio.wait(customers, timeout=REPLY_TIMEOUT + THINK[1] + 10)
            for task in pending:
                task.cancel()
            for line in _report(run, time.monotonic() - started):
                print(line)
    assert not pending, f"{len(pending)} customers still waiting for a reply"
    assert all(t.exception() is None for t in done), [t.exception() for t in done if t.exception()]

    # Every customer message got the bot's reply or the clear retry message.
    outcomes = Counter(s.outcome for s in run.sent)
    assert set(outcomes) <= {"bot_reply", "bot_reply_unavailable", "retry"}, outcomes
    assert outcomes["bot_reply"] > len(run.sent) * 0.3, outcomes  # the bot did work

    # Every acknowledged survey answer is stored exactly once; nothing is stored twice.
    conversation_of, rows = await _feedback(database_url)
    kinds = {"score": "csat", "comment": "comment"}
    answered = [s for s in run.sent if s.step in kinds and s.acknowledged]
    assert answered, "no survey answer was acknowledged"
    for s in answered:
        assert s.message_id is not None
        key = (conversation_of[s.message_id], kinds[s.step])
        assert rows[key] == 1, f"{s.step} answer of {key[0]}: {rows[key]} rows"
    ours = {conversation_of[s.message_id] for s in run.sent if s.message_id in conversation_of}
    twice = [k for k, n in rows.items() if k[0] in ours and n > 1]  # (demo data has no chats)
    assert not twice, twice
    stored = sum(n for k, n in rows.items() if k[0] in ours)
    print(
        f"  survey answers acknowledged: {len(answered)}, each stored exactly once; survey "
        f"rows of this run's conversations: {stored}, none twice"
    )

    # No process was left broken: all alive, both replicas ready, a full conversation works.
    assert all(stack.alive().values()), stack.alive()
    await _wait_ready(ready_urls, timeout=120)  # the load is gone: Rasa answers quickly
    async with aiohttp.ClientSession() as http:
        for url in [*ws_urls, through_nginx]:
            ws = await http.ws_connect(url)
            frames: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
            reader = asyncio.create_task(read_frames(ws, frames, time.monotonic))
            await ws.send_json({"type": "hello", "token": None})
            assert (await _next(frames, 10) or {}).get("type") == "session"
            for step, template, expected in SCRIPT:
                sent = Sent(step, time.monotonic())
                await _turn(
                    ws,
                    frames,
                    sent,
                    template.format(order=pairs[0][0], email=pairs[0][1]),
                    expected,
                )
                assert sent.acknowledged, (url, step, sent.outcome)
            reader.cancel()
            await ws.close()
