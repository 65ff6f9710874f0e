"""Shop events webhook: sustained signed events/s into PostgreSQL, 10 % replays, zero lost or
doubled (target >= 500 events/s, p95 <= 50 ms on this machine).

    .venv-app/bin/python -m bench.events [--events 9000] [--senders 16] [--replays 0.1]
        [--web-processes 1] [--rate 0] [--postgres URL] [--seed 1]

Setup: a dedicated PostgreSQL database (dropped and recreated; default `events_bench`),
`python -m bot migrate`, then only the web service (`python -m bot serve`, one or more
processes on free ports, senders spread over them round-robin; Rasa is not needed). Each
web process runs its events worker, as in production.

Load: the events are built up front as flows of three events each, sent in order within a
flow: 80 % one-time orders (order.placed → order.shipped → order.delivered) and 20 %
subscriptions (subscription.started → renewed → renewed), over a pool of customers half
the number of flows (so customers have several flows running at once). S senders each
take the next flow and send its events back to back (no think time: saturation), or
with `--rate R` no faster than R new events/s in all (an offered load, to see the apply
lag at a rate the worker keeps up with). After
each new event, a sender re-sends an already acknowledged event with the probability
that makes `--replays` of all requests replays. Bodies are prepared before the clock
starts; each request is signed as it is sent (the signature carries a timestamp that
must be within EVENTS_SIGNATURE_TOLERANCE_SECONDS, so a long run cannot pre-sign).

Measured: ingest (the target) — new events/s and p50/p95/p99 of the HTTP answer (202
for a new event); apply — the worker's events/s and the lag from accepted to applied
(`applied_at - received_at` of each row), after the senders stop the time until the queue
is empty. Baseline (same run, same senders, same bodies): POSTs with a wrong signature,
answered 401 after the body is read and the HMAC compared — the web service's floor
without the database. Verification once the queue is empty, in the database: every
acknowledged event id is in shop_events exactly once and applied (lost, failed),
orders / subscriptions / lifecycles / survey dispatches are exactly as many as the flows
imply (doubled), every order ends delivered, every replay answered `"replayed": true`
with a state (pending, or applied with exactly the stored result).
Results also go to var/bench/events/results.json; the web log to var/bench/events/web-N.log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select, text

from bench.host import cpu_seconds, loadavg, machine, python, say
from bench.stats import summary_ms
from bot.domain.enums import OrderStatus, ShopEventStatus
from bot.domain.shop_events import signature_header
from bot.launcher import free_port
from bot.storage.db import create_engine
from bot.storage.models import Lifecycle, Order, ShopEvent, Subscription, SurveyDispatch

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "bench" / "events"
RESULTS = OUT / "results.json"
HOST = "127.0.0.1"
RASA_URL = "http://127.0.0.1:29998"  # nothing listens there; events never call Rasa
SECRET = "bench-events-secret-0123456789abcdef0123456789"
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/events_bench"
TARGET_EVENTS_PER_S = 500.0
TARGET_P95_MS = 50.0
TIMEOUT = 30.0
STARTUP_SECONDS = 60.0
PERIOD_DAYS = 3  # a subscription's billing period in the generated flows
WARMUP_FLOWS = 100


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.events",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=9000, help="unique events (default 9000)")
    parser.add_argument("--senders", type=int, default=16, help="concurrent senders (default 16)")
    parser.add_argument(
        "--replays", type=float, default=0.1, help="share of requests that are replays"
    )
    parser.add_argument("--web-processes", type=int, default=1, help="web service processes")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="offered new events/s (default 0: as fast as the senders can, saturation)",
    )
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="database URL (recreated)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not 30 <= args.events <= 1_000_000:
        parser.error("--events must be between 30 and 1000000")
    if not 1 <= args.senders <= 512:
        parser.error("--senders must be between 1 and 512")
    if not 0 <= args.replays < 0.9:
        parser.error("--replays must be in [0, 0.9)")
    if not 1 <= args.web_processes <= 8:
        parser.error("--web-processes must be between 1 and 8")
    return args


# ---- the events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    event_id: str
    body: bytes


@dataclass
class Plan:
    flows: list[list[Prepared]]
    order_flows: int = 0
    subscription_flows: int = 0
    customers: set[str] = field(default_factory=set)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def build_plan(flow_count: int, rng: random.Random, prefix: str) -> Plan:
    plan = Plan(flows=[])
    customers = max(1, flow_count // 2)
    # Recent enough that every event schedules its surveys (they expire 14 days after the
    # event, surveys.EXPIRY): flows start within 4 days from 12 days ago; a subscription's
    # periods are 3 days long, so its last event is at most 10 days after 12 days ago.
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=12)
    for i in range(flow_count):
        customer = f"{prefix}C{rng.randrange(customers):06d}"
        plan.customers.add(customer)
        start = base + timedelta(minutes=rng.randrange(60 * 24 * 4))
        who = {
            "external_id": customer,
            "email": f"{customer.lower()}@example.com",
            "name": customer,
        }
        if rng.random() < 0.8:
            plan.order_flows += 1
            order = {
                "number": f"{prefix}{i:07d}",
                "total": "42.00",
                "currency": "EUR",
                "items": [{"sku": "KIT-1", "name": "Kettle", "qty": 1, "price": "42.00"}],
            }
            steps = [("order.placed", 0), ("order.shipped", 1), ("order.delivered", 3)]
            events = [
                {"type": kind, "occurred_at": _iso(start + timedelta(days=day)), "order": order}
                for kind, day in steps
            ]
        else:
            plan.subscription_flows += 1
            events = []
            for k, kind in enumerate(("started", "renewed", "renewed")):
                period = start + timedelta(days=PERIOD_DAYS * k)
                events.append(
                    {
                        "type": f"subscription.{kind}",
                        "occurred_at": _iso(period),
                        "subscription": {
                            "id": f"{prefix}S{i:07d}",
                            "plan": "Coffee",
                            "price": "19.00",
                            "period_start": _iso(period),
                            "period_end": _iso(period + timedelta(days=PERIOD_DAYS)),
                        },
                    }
                )
        flow = []
        for k, event in enumerate(events):
            event_id = f"{prefix}evt-{i}-{k}"
            body = json.dumps({"id": event_id, **event, "customer": who}).encode()
            flow.append(Prepared(event_id, body))
        plan.flows.append(flow)
    return plan


# ---- database and web service --------------------------------------------------------------


async def fresh_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres").execution_options(
        isolation_level="AUTOCOMMIT"
    )
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            await connection.execute(text(f"CREATE DATABASE {name}"))
    finally:
        await admin.dispose()
    env = {**os.environ, "DATABASE_URL": url}
    migrate = [python(), "-m", "bot", "migrate"]
    await asyncio.to_thread(
        subprocess.run,
        migrate,
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
    )


def start_web(database_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "WEB_HOST": HOST,
        "WEB_PORT": str(port),
        "RASA_URL": RASA_URL,
        "EVENTS_SECRET": SECRET,
    }
    with log.open("wb") as handle:
        return subprocess.Popen(
            [python(), "-m", "bot", "serve"],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop_web(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


async def wait_healthy(
    http: aiohttp.ClientSession, url: str, process: subprocess.Popen[bytes]
) -> None:
    started = time.monotonic()
    while time.monotonic() - started < STARTUP_SECONDS:
        if process.poll() is not None:
            raise RuntimeError(f"the web service exited (code {process.returncode})")
        try:
            async with http.get(
                f"{url}/healthz", timeout=aiohttp.ClientTimeout(total=3)
            ) as response:
                if response.status == 200:
                    return
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{url}/healthz did not answer within {STARTUP_SECONDS:.0f} s")


# ---- sending ---------------------------------------------------------------------------------


@dataclass
class Samples:
    new: list[float] = field(default_factory=list)
    replay: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    # Replays answered "applied": event id -> the result they carried (checked at the end).
    replay_results: dict[str, list[Any]] = field(default_factory=dict)
    replay_pending: int = 0
    replay_mismatches: int = 0
    requests: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def post(
    http: aiohttp.ClientSession, url: str, event: Prepared, signature: str
) -> tuple[float, int, Any]:
    started = time.perf_counter()
    async with http.post(
        f"{url}/api/events",
        data=event.body,
        headers={"Content-Type": "application/json", "X-Signature": signature},
        timeout=aiohttp.ClientTimeout(total=TIMEOUT),
    ) as response:
        payload = await response.json(content_type=None)
        return time.perf_counter() - started, response.status, payload


@dataclass
class Pace:
    """An offered load: the k-th new event is sent no earlier than start + k / rate."""

    rate: float
    start: float = field(default_factory=time.perf_counter)
    sent: int = 0

    async def wait(self) -> None:
        if self.rate <= 0:
            return
        slot = self.start + self.sent / self.rate
        self.sent += 1
        await asyncio.sleep(max(0.0, slot - time.perf_counter()))


async def sender(
    http: aiohttp.ClientSession,
    url: str,
    flows: Any,
    samples: Samples,
    replay_p: float,
    rng: random.Random,
    acked_list: list[Prepared],
    pace: Pace | None = None,
) -> None:
    for flow in flows:
        for event in flow:
            if pace is not None:
                await pace.wait()
            await send_one(http, url, event, samples, replay=False)
            acked_list.append(event)
            samples.requests += 1
            if rng.random() < replay_p:
                again = acked_list[rng.randrange(len(acked_list))]
                await send_one(http, url, again, samples, replay=True)
                samples.requests += 1


async def send_one(
    http: aiohttp.ClientSession, url: str, event: Prepared, samples: Samples, *, replay: bool
) -> None:
    try:
        elapsed, status, payload = await post(
            http, url, event, signature_header(SECRET, event.body)
        )
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        samples.error(type(exc).__name__)
        return
    if status not in (200, 202):
        samples.error(f"http_{status}")
        return
    if replay:
        samples.replay.append(elapsed)
        state = (status, payload.get("replayed"), payload.get("status"))
        if state == (202, True, "pending"):
            samples.replay_pending += 1
        elif state == (200, True, "applied") and payload.get("result"):
            samples.replay_results.setdefault(event.event_id, []).append(payload["result"])
        else:
            samples.replay_mismatches += 1
    else:
        samples.new.append(elapsed)
        if (status, payload.get("replayed"), payload.get("status")) != (202, False, "pending"):
            samples.error("new_event_not_accepted_as_pending")
        samples.acked.add(event.event_id)


async def baseline(
    http: aiohttp.ClientSession, urls: list[str], events: list[Prepared], senders: int
) -> tuple[list[float], float, int]:
    """Same bodies, wrong signature: 401 without touching the database."""
    latencies: list[float] = []
    wrong = 0
    queue = iter(events)

    async def run(url: str) -> None:
        nonlocal wrong
        for event in queue:
            wrong_signature = f"t={int(time.time())},v1=" + "0" * 64
            elapsed, status, _ = await post(http, url, event, wrong_signature)
            latencies.append(elapsed)
            wrong += status != 401

    started = time.perf_counter()
    await asyncio.gather(*(run(urls[i % len(urls)]) for i in range(senders)))
    return latencies, time.perf_counter() - started, wrong


# ---- verification -------------------------------------------------------------------------------


async def verify(url: str, plan: Plan, warm: Plan, samples: Samples) -> dict[str, Any]:
    engine = create_engine(url)
    flows = plan.order_flows + warm.order_flows, plan.subscription_flows + warm.subscription_flows
    customers = len(plan.customers | warm.customers)
    try:
        async with engine.connect() as db:
            stored_ids = set((await db.execute(select(ShopEvent.id))).scalars().all())
            statuses = select(ShopEvent.status, func.count()).group_by(ShopEvent.status)
            by_status = {row[0]: int(row[1]) for row in await db.execute(statuses)}
            replayed = select(ShopEvent.id, ShopEvent.result).where(
                ShopEvent.id.in_(list(samples.replay_results))
            )
            stored_results: dict[str, Any] = {row[0]: row[1] for row in await db.execute(replayed)}

            async def count(model: Any, *where: Any) -> int:
                return int(
                    await db.scalar(select(func.count()).select_from(model).where(*where)) or 0
                )

            grouped = select(SurveyDispatch.trigger, func.count()).group_by(SurveyDispatch.trigger)
            triggers: dict[str, int] = {row[0]: int(row[1]) for row in await db.execute(grouped)}
            found = {
                "shop_events": len(stored_ids),
                "orders": await count(Order),
                "orders_not_delivered": await count(Order, Order.status != OrderStatus.delivered),
                "subscriptions": await count(Subscription),
                "lifecycles": await count(Lifecycle),
                "open_lifecycles": await count(Lifecycle, Lifecycle.closed_at.is_(None)),
                "dispatches": {k: int(v) for k, v in triggers.items()},
                "not_applied": sum(
                    n for st, n in by_status.items() if st is not ShopEventStatus.applied
                ),
            }
    finally:
        await engine.dispose()
    all_ids = {e.event_id for p in (plan, warm) for flow in p.flows for e in flow}
    expected = {
        "shop_events": len(all_ids),
        "orders": flows[0],
        "orders_not_delivered": 0,
        "subscriptions": flows[1],
        "lifecycles": flows[0] + 3 * flows[1],
        "open_lifecycles": flows[0] + flows[1],
        "dispatches": {
            k: v
            for k, v in {
                "first_order": customers,
                "order_delivered": flows[0],
                "subscription_renewed": 2 * flows[1],
            }.items()
            if v
        },
        "not_applied": 0,
    }
    # Every replay answered "applied" carried exactly the result stored for that event.
    for event_id, answers in samples.replay_results.items():
        samples.replay_mismatches += sum(a != stored_results.get(event_id) for a in answers)
    lost = len(set(samples.acked) - stored_ids)
    extra = len(stored_ids - all_ids)
    return {
        "expected": expected,
        "found": found,
        "lost": lost,
        "unexpected_ids": extra,
        "consistent": found == expected and lost == 0 and extra == 0,
    }


async def wait_applied(url: str, since: float, limit_s: float = 900.0) -> float:
    """Seconds from `since` until no event is pending any more."""
    engine = create_engine(url)
    pending = (
        select(func.count())
        .select_from(ShopEvent)
        .where(ShopEvent.status == ShopEventStatus.pending)
    )
    try:
        while time.perf_counter() - since < limit_s:
            async with engine.connect() as db:
                if not await db.scalar(pending):
                    return time.perf_counter() - since
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
    raise RuntimeError(f"events still pending after {limit_s:.0f} s")


async def apply_stats(url: str) -> dict[str, Any]:
    """Apply rate and accept-to-applied lag of the measured events (ids B…), from the rows."""
    engine = create_engine(url)
    try:
        async with engine.connect() as db:
            rows = (
                await db.execute(
                    select(ShopEvent.received_at, ShopEvent.applied_at).where(
                        ShopEvent.id.like("Bevt-%")
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    lags = [(applied - received).total_seconds() for received, applied in rows if applied]
    first = min(received for received, _ in rows)
    last = max(applied for _, applied in rows if applied)
    span = (last - first).total_seconds()
    return {
        "events": len(rows),
        "events_per_s": len(rows) / span if span else None,
        "first_accepted_to_last_applied_s": span,
        "lag": summary_ms(lags),
    }


# ---- the run -------------------------------------------------------------------------------------


async def measure(args: argparse.Namespace, urls: list[str], pids: list[int]) -> dict[str, Any]:
    rng = random.Random(args.seed)
    flow_count = args.events // 3
    warm = build_plan(WARMUP_FLOWS, random.Random(args.seed + 1), "W")
    plan = build_plan(flow_count, rng, "B")
    replay_p = args.replays / (1 - args.replays)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        warm_samples = Samples()
        warm_acked: list[Prepared] = []
        await asyncio.gather(
            *(
                sender(
                    http,
                    urls[i % len(urls)],
                    iter(warm.flows[i::8]),
                    warm_samples,
                    0.0,
                    random.Random(i),
                    warm_acked,
                )
                for i in range(8)
            )
        )
        say(f"warm-up: {len(warm_acked)} events, errors {warm_samples.errors or 0}")

        all_events = [e for flow in plan.flows for e in flow]
        base_cpu_before = [cpu_seconds(pid) for pid in pids]
        base_latencies, base_elapsed, wrong = await baseline(http, urls, all_events, args.senders)
        base_cpu = sum(
            (a or 0) - (b or 0)
            for a, b in zip([cpu_seconds(pid) for pid in pids], base_cpu_before, strict=True)
        )
        say(f"baseline: {len(base_latencies)} unsigned POSTs in {base_elapsed:.1f} s")

        samples = Samples()
        acked: list[Prepared] = []
        flows = iter(plan.flows)  # shared: each sender takes the next flow
        cpu_before = [cpu_seconds(pid) for pid in pids]
        load_before = loadavg()
        started = time.perf_counter()
        pace = Pace(args.rate, started)
        await asyncio.gather(
            *(
                sender(
                    http,
                    urls[i % len(urls)],
                    flows,
                    samples,
                    replay_p,
                    random.Random(rng.random()),
                    acked,
                    pace,
                )
                for i in range(args.senders)
            )
        )
        elapsed = time.perf_counter() - started
        cpu_after = [cpu_seconds(pid) for pid in pids]
        load_after = loadavg()
        say(f"ingest: {len(samples.new)} events in {elapsed:.1f} s; waiting for the queue")
        drain_s = await wait_applied(args.postgres, time.perf_counter())
        cpu_drained = [cpu_seconds(pid) for pid in pids]
    web_cpu = sum((a or 0) - (b or 0) for a, b in zip(cpu_after, cpu_before, strict=True))
    web_cpu_all = sum((a or 0) - (b or 0) for a, b in zip(cpu_drained, cpu_before, strict=True))
    applying = await apply_stats(args.postgres)
    return {
        "plan": plan,
        "warm": warm,
        "samples": samples,
        "elapsed_s": elapsed,
        "baseline": {
            "latency": summary_ms(base_latencies),
            "elapsed_s": base_elapsed,
            "requests": len(base_latencies),
            "not_401": wrong,
            "web_cpu_ms_per_request": 1000 * base_cpu / max(len(base_latencies), 1),
        },
        "web_cpu_share_of_one_core": web_cpu / elapsed if elapsed else None,
        "web_cpu_ms_per_request": 1000 * web_cpu / max(samples.requests, 1),
        # Until the queue is empty: receiving and applying, per new event.
        "web_cpu_ms_per_event_applied": 1000 * web_cpu_all / max(len(samples.new), 1),
        "drain_after_ingest_s": drain_s,
        "apply": applying,
        "load_before": load_before,
        "load_after": load_after,
    }


def _ms(value: float | int | None) -> str:
    return "–" if value is None else f"{value:.1f} ms"


def report(
    args: argparse.Namespace, results: dict[str, Any], check: dict[str, Any]
) -> dict[str, Any]:
    samples: Samples = results["samples"]
    elapsed = results["elapsed_s"]
    new, replay = summary_ms(samples.new), summary_ms(samples.replay)
    every = summary_ms(samples.new + samples.replay)
    base = results["baseline"]
    events_per_s = len(samples.new) / elapsed
    requests_per_s = samples.requests / elapsed
    base_per_s = base["requests"] / base["elapsed_s"]
    say()
    say(
        f"events: {len(samples.new)} new + {len(samples.replay)} replays = {samples.requests} "
        f"requests in {elapsed:.1f} s, {args.senders} senders, {args.web_processes} web process(es)"
    )
    say(
        f"  new events/s {events_per_s:.0f}; all requests/s {requests_per_s:.0f} "
        f"(baseline 401 path {base_per_s:.0f}/s, ratio {requests_per_s / base_per_s:.2f})"
    )
    say(
        f"  new events: p50 {_ms(new['p50_ms'])}, p95 {_ms(new['p95_ms'])}, p99 {_ms(new['p99_ms'])}"
    )
    say(
        f"  replays:    p50 {_ms(replay['p50_ms'])}, p95 {_ms(replay['p95_ms'])}, p99 {_ms(replay['p99_ms'])}"
    )
    say(
        f"  all:        p50 {_ms(every['p50_ms'])}, p95 {_ms(every['p95_ms'])}, p99 {_ms(every['p99_ms'])}"
    )
    b = base["latency"]
    say(
        f"  baseline:   p50 {_ms(b['p50_ms'])}, p95 {_ms(b['p95_ms'])}, p99 {_ms(b['p99_ms'])} "
        f"({base['not_401']} not 401)"
    )
    say(
        f"  errors {samples.errors or 0}; replays answered pending {samples.replay_pending}, "
        f"applied {sum(len(v) for v in samples.replay_results.values())}, "
        f"inconsistent {samples.replay_mismatches}"
    )
    applying = results["apply"]
    lag = applying["lag"]
    say(
        f"apply (events worker): {applying['events']} events, {applying['events_per_s']:.0f}/s "
        f"from the first accepted to the last applied ({applying['first_accepted_to_last_applied_s']:.1f} s); "
        f"queue empty {results['drain_after_ingest_s']:.1f} s after the senders stopped"
    )
    say(
        f"  lag accepted → applied: p50 {_ms(lag['p50_ms'])}, p95 {_ms(lag['p95_ms'])}, "
        f"p99 {_ms(lag['p99_ms'])}, max {_ms(lag['max_ms'])}"
    )
    cpu = results["web_cpu_share_of_one_core"]
    say(
        f"  web CPU {cpu:.2f} of one core; load average {results['load_before']} → {results['load_after']}"
    )
    say(
        f"  web CPU per request while sending: {results['web_cpu_ms_per_request']:.1f} ms (events), "
        f"{base['web_cpu_ms_per_request']:.1f} ms (401 baseline); until the queue was empty "
        f"{results['web_cpu_ms_per_event_applied']:.1f} ms per new event (accept + apply)"
    )
    say(
        f"verification: lost {check['lost']}, unexpected ids {check['unexpected_ids']}, "
        f"rows as expected: {check['found'] == check['expected']}, "
        f"replay answers inconsistent: {samples.replay_mismatches}"
    )
    if check["found"] != check["expected"]:
        say(f"  expected {check['expected']}")
        say(f"  found    {check['found']}")
    met = (
        events_per_s >= TARGET_EVENTS_PER_S
        and (every["p95_ms"] or 1e9) <= TARGET_P95_MS
        and check["consistent"]
        and not samples.errors
        and not samples.replay_mismatches
    )
    say(
        f"target >= {TARGET_EVENTS_PER_S:.0f} events/s and p95 <= {TARGET_P95_MS:.0f} ms (ingest), "
        f"nothing lost or doubled: {'met' if met else 'NOT met'}"
    )
    return {
        "command": "python -m bench.events " + " ".join(sys.argv[1:]),
        "when": datetime.now(timezone.utc).isoformat(),
        "machine": machine(),
        "events_per_s": events_per_s,
        "requests_per_s": requests_per_s,
        "baseline_requests_per_s": base_per_s,
        "new": new,
        "replay": replay,
        "all": every,
        "baseline": base,
        "errors": samples.errors,
        "replay_mismatches": samples.replay_mismatches,
        "web_cpu_share_of_one_core": cpu,
        "web_cpu_ms_per_request": results["web_cpu_ms_per_request"],
        "replay_answers_pending": samples.replay_pending,
        "apply": results["apply"],
        "drain_after_ingest_s": results["drain_after_ingest_s"],
        "web_cpu_ms_per_event_applied": results["web_cpu_ms_per_event_applied"],
        "load_before": results["load_before"],
        "load_after": results["load_after"],
        "verification": check,
        "target_met": met,
    }


async def main_async(args: argparse.Namespace) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    say(f"machine: {machine()}; database {args.postgres}")
    await fresh_database(args.postgres)
    ports = [free_port() for _ in range(args.web_processes)]
    processes = [
        start_web(args.postgres, port, OUT / f"web-{n}.log") for n, port in enumerate(ports)
    ]
    urls = [f"http://{HOST}:{port}" for port in ports]
    try:
        async with aiohttp.ClientSession() as http:
            for url, process in zip(urls, processes, strict=True):
                await wait_healthy(http, url, process)
        say(f"web service up on {', '.join(urls)}")
        results = await measure(args, urls, [p.pid for p in processes])
    finally:
        for process in processes:
            stop_web(process)
    check = await verify(args.postgres, results["plan"], results["warm"], results["samples"])
    summary = report(args, results, check)
    RESULTS.write_text(json.dumps(summary, indent=2))
    say(f"results: {RESULTS.relative_to(ROOT)}")
    samples = results["samples"]
    return 0 if check["consistent"] and not samples.errors and not samples.replay_mismatches else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
