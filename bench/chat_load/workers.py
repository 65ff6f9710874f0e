"""The production profile with 1, 2, 3 … Rasa workers in one run: how throughput
grows with the workers on this machine.

    .venv-app/bin/python -m bench.chat_load.workers [--workers 1,2,3] [--web 2]
        [--conversations 200] [--realistic-seconds 40] [--saturation-seconds 20]

For each worker count: the production profile (`start_prod`, as `bench.chat_load.prod`:
PostgreSQL tracker store, Redis lock store, RabbitMQ, nginx in front of the action
servers, `--web` web replicas over which the customers alternate, two action servers)
with that many Rasa workers; a realistic phase (N thinking customers) and a saturation
phase (50 customers without think time). Reports completed turns/s, p50/p95 and errors per
worker count. The product and tracker databases are reset once at the start (the same
demo shop as `bench.chat_load.prod`); each worker count starts its own stack.
Results: var/bench/chat_load/workers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shlex
import signal
import subprocess
import sys
import time
from typing import Any

from bench.chat_load.__main__ import (
    LOGS,
    MODEL,
    OUT,
    deferred_interrupts,
    machine,
    model_line,
    order_pairs,
    say,
)
from bench.chat_load.load import Phase
from bench.chat_load.prod import PROD_ENV, PROD_PORTS, THINK, _phases, _pids, _reset_postgres, _ws
from bot.launcher import ProdPorts, start_prod

RESULTS = OUT / "workers.json"
RASA_PORTS = (26005, 26007, 26009, 26011)
WEB_PORTS = (29000, 29001, 29002)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chat_load.workers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workers", default="1,2,3", help="Rasa worker counts, in order")
    parser.add_argument("--web", type=int, default=2, help="web replicas")
    parser.add_argument("--conversations", type=int, default=200, help="realistic load")
    parser.add_argument("--realistic-seconds", type=float, default=40.0)
    parser.add_argument("--saturation-conversations", type=int, default=50)
    parser.add_argument("--saturation-seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.counts = [int(n) for n in args.workers.split(",")]
    if not all(1 <= n <= len(RASA_PORTS) for n in args.counts) or not 1 <= args.web <= len(
        WEB_PORTS
    ):
        parser.error(f"1–{len(RASA_PORTS)} workers, 1–{len(WEB_PORTS)} web replicas")
    return args


def ports(workers: int, web: int) -> ProdPorts:
    return ProdPorts(
        web=WEB_PORTS[:web],
        rasa=RASA_PORTS[:workers],
        actions=PROD_PORTS.actions,
        actions_balancer=PROD_PORTS.actions_balancer,
    )


def measure(workers: int, args: argparse.Namespace) -> dict[str, Any]:
    chosen = ports(workers, args.web)
    say(f"starting the production profile with {workers} Rasa worker(s), {args.web} web …")
    started = time.monotonic()
    stack = start_prod(chosen, env=PROD_ENV, log_dir=LOGS / f"workers-{workers}")
    try:
        say(f"healthy after {time.monotonic() - started:.0f} s")
        paths = {"production": _ws([f"ws://127.0.0.1:{p}/ws" for p in chosen.web])}
        plan = [
            (
                f"realistic {args.conversations}",
                Phase(
                    "realistic", "production", args.conversations, args.realistic_seconds, *THINK
                ),
            ),
            (
                "saturation",
                Phase(
                    "saturation",
                    "production",
                    args.saturation_conversations,
                    args.saturation_seconds,
                    0.0,
                    0.0,
                ),
            ),
        ]
        results = asyncio.run(_phases(plan, paths, order_pairs(), _pids(stack), args.seed))
        results["stack_after"] = stack.alive()
        return results
    finally:
        stack.stop()


def report(results: dict[int, dict[str, Any]], args: argparse.Namespace) -> list[str]:
    n = args.conversations
    lines = [
        "",
        f"| Rasa workers | saturation {args.saturation_conversations}: turns/s; p95; errors "
        f"| realistic {n}: p50 / p95; errors |",
        "|---|---|---|",
    ]
    for workers, phases in results.items():
        s, r = phases["saturation"], phases[f"realistic {n}"]
        lines.append(
            f"| {workers} | {s['completed_turns_per_s']:.1f}; {s['latency']['p95_ms'] or 0:.0f} ms; "
            f"{s['errors']} | {r['latency']['p50_ms'] or 0:.0f} / {r['latency']['p95_ms'] or 0:.0f} ms; "
            f"{r['errors']} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    args = parse_args(given)
    if not MODEL.exists():
        say("No trained model; run `make train` first.")
        return 2
    header = [
        f"command: {('python -m bench.chat_load.workers ' + shlex.join(given)).rstrip()}",
        f"date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: {machine()}",
        f"model: {model_line()}",
    ]
    for line in header:
        say(line)
    results: dict[int, dict[str, Any]] = {}
    with deferred_interrupts() as interrupts:
        if interrupts:
            return 130
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            say("resetting the production profile's PostgreSQL databases …")
            _reset_postgres()
            for workers in args.counts:
                results[workers] = measure(workers, args)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            say(f"setup failed: {exc}")
            return 1
    lines = report(results, args)
    for line in lines:
        say(line)
    RESULTS.write_text(
        json.dumps({"header": header, "report": lines, "phases": results}, indent=1, default=str)
        + "\n"
    )
    say(f"\nfull results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
