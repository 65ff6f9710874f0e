"""The events worker's apply alone: how fast a queue of pending shop events is applied when
nothing else runs in the process (no HTTP, no ingest competing for its CPU).

    .venv-app/bin/python -m bench.events.apply_only [--events 9000] [--appliers 2]
        [--batch 128] [--one-at-a-time] [--postgres URL] [--seed 1]

Recreates the PostgreSQL database (default `events_apply_bench`), migrates it, stores the
events of `python -m bench.events` (the same flows, in the order its 16 senders send them)
as pending with `shop_events.accept`, then runs `--appliers` loops of
`shop_events.apply_pending` in this process until the queue is empty, as the web
service's worker does. `--one-at-a-time` applies every event by the ORM path (the apply
before the set-based batches, without their one-batch-at-a-time lock). Reports events/s, this
process's CPU per event, the database time per statement kind, the events not applied
and the conflicts (deadlocks) the appliers retried.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import sys
import time
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from bench.events.__main__ import Plan, build_plan, fresh_database
from bench.host import loadavg, machine, say
from bot.domain import shop_events
from bot.storage.db import create_engine, create_session_factory

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/events_apply_bench"
SENDERS = 16


def arrival_order(plan: Plan) -> list[dict[str, Any]]:
    """The flows' events in the order `bench.events`' senders send them: each of 16 senders
    sends its flow's events back to back and then takes the next flow."""
    flows = [[json.loads(p.body) for p in flow] for flow in plan.flows]
    order: list[dict[str, Any]] = []
    active: list[list[dict[str, Any]]] = []
    taken = 0
    while taken < len(flows) or active:
        while len(active) < SENDERS and taken < len(flows):
            active.append(list(flows[taken]))
            taken += 1
        for flow in list(active):
            order.append(flow.pop(0))
            if not flow:
                active.remove(flow)
    return order


async def run(args: argparse.Namespace) -> dict[str, Any]:
    await fresh_database(args.postgres)
    engine = create_engine(args.postgres)
    sessions = create_session_factory(engine)
    plan = build_plan(args.events // 3, random.Random(args.seed), "A")
    events = [shop_events.parse_event(payload) for payload in arrival_order(plan)]
    for start in range(0, len(events), 256):
        await shop_events.accept(sessions, events[start : start + 256])
    seconds: dict[str, float] = collections.defaultdict(float)
    counts: collections.Counter[str] = collections.Counter()
    started_at: dict[int, float] = {}

    def before(_conn: Any, cursor: Any, *_args: Any) -> None:
        started_at[id(cursor)] = time.perf_counter()

    def after(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        kind = " ".join(statement.split()[:3])[:40]
        seconds[kind] += time.perf_counter() - started_at.pop(id(cursor), time.perf_counter())
        counts[kind] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)
    conflicts = 0
    applied = 0

    async def applier() -> None:
        nonlocal applied, conflicts
        while True:
            try:
                batch = await shop_events.apply_pending(
                    sessions, args.batch, fast=not args.one_at_a_time
                )
            except DBAPIError:
                conflicts += 1
                await asyncio.sleep(0.02)
                continue
            if not batch:
                return
            applied += len(batch)

    load_before = loadavg()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(applier() for _ in range(args.appliers)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    async with sessions() as session:
        left = await session.scalar(
            text("SELECT count(*) FROM shop_events WHERE status <> 'applied'")
        )
    await engine.dispose()
    return {
        "command": "python -m bench.events.apply_only " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "events": len(events),
        "applied": applied,
        "not_applied": left,
        "conflicts": conflicts,
        "events_per_s": applied / wall,
        "seconds": wall,
        "process_cpu_ms_per_event": cpu * 1000 / max(applied, 1),
        "database_ms_per_event": {
            kind: round(total * 1000 / max(applied, 1), 3)
            for kind, total in sorted(seconds.items(), key=lambda kv: -kv[1])
        },
        "statements": dict(counts),
        "load_before": load_before,
        "load_after": loadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=9000)
    parser.add_argument("--appliers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=shop_events.QUEUE_BATCH)
    parser.add_argument("--one-at-a-time", action="store_true", help="the ORM path only")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    say(
        f"machine: {result['machine']}; load average {result['load_before']} → "
        f"{result['load_after']}"
    )
    say(
        f"{result['applied']} of {result['events']} events applied in {result['seconds']:.1f} s"
        f" = {result['events_per_s']:.0f}/s ({args.appliers} appliers, batches of "
        f"{args.batch}{', one event at a time' if args.one_at_a_time else ''}); "
        f"{result['process_cpu_ms_per_event']:.2f} ms of this process's CPU per event; "
        f"not applied {result['not_applied']}, conflicts {result['conflicts']}"
    )
    for kind, ms in list(result["database_ms_per_event"].items())[:8]:
        say(f"  {ms:6.3f} ms/event  {result['statements'][kind]:5d}x  {kind}")
    return 0 if result["not_applied"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
