"""Chat load on the production profile (2 Rasa workers, 2 action servers, 2 web replicas on
PostgreSQL + Redis + RabbitMQ) against the embedded default (one process each, SQLite) and
one bare Rasa process, in the same run.

    .venv-app/bin/python -m bench.chat_load.prod [--quick] [--realistic-seconds 120]
        [--saturation-seconds 60] [--conversations 200,1000]

Same simulated customers, conversation, turn definition and load models (realistic with
think time, saturation without) as `python -m bench.chat_load` (its module docstring, in
bench/chat_load/__main__.py, describes them). Phases, one stack at a time (the other is stopped):
* embedded default: realistic N (for each N), saturation 50 over its WebSocket; bare Rasa
  (REST channel of the same single Rasa process) realistic 200 and saturation 50;
* production profile: realistic N (for each N), saturation 50; customers alternate between
  the two web replicas (as a load balancer in front of them would).
* a stock `rasa run` (no rasa_ext speed-ups; same model and action server): saturation 50.
Ratios: production / embedded default, production / one bare Rasa process (ours, with the
speed-ups) and production / one stock `rasa run`.
Results: var/bench/chat_load/prod.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from bench.chat_load.__main__ import (
    LOGS,
    MODEL,
    OUT,
    PORTS,
    deferred_interrupts,
    fresh_database,
    machine,
    model_line,
    order_pairs,
    say,
    stock_rasa_phase,
)
from bench.chat_load.clients import Chat, RestChat, WsChat
from bench.chat_load.load import Phase, run_phase, settle, summarise
from bench.ws import TRUSTED_PROXY_ENV
from bot.launcher import (
    ProdPorts,
    Stack,
    preflight,
    prepare_database,
    prod_environment,
    running,
    start_prod,
)

RESULTS = OUT / "prod.json"
# Below the kernel's ephemeral range (32768-60999 here): the load generator opens thousands
# of client connections, and one of them holding e.g. :48000 made a replica fail to bind.
PROD_PORTS = ProdPorts(
    web=(29000, 29001), rasa=(26005, 26007), actions=(26055, 26056), actions_balancer=26050
)
PROD_ENV = {
    "DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/shopbot_bench",
    "RASA_TRACKER_DB_NAME": "shopbot_bench_tracker",
    "REDIS_URL": "redis://127.0.0.1:6379/11",
    "RASA_LOCK_REDIS_DB": "12",
    "RASA_LOCK_KEY_PREFIX": "bench",
    "RABBITMQ_QUEUE": "shopbot_bench_events",
    "RABBITMQ_EXCHANGE": "shopbot-bench-exchange",
    "SURVEY_FATIGUE_DAYS": "0",
    "RATE_LIMIT_MESSAGES": "1000",
    "LOG_FORMAT": "json",
    **TRUSTED_PROXY_ENV,  # per-address limits on; each simulated customer its address
}
THINK = (5.0, 15.0)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chat_load.prod",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--conversations", default="200,1000", help="realistic loads")
    parser.add_argument("--realistic-seconds", type=float, default=120.0)
    parser.add_argument("--saturation-conversations", type=int, default=50)
    parser.add_argument("--saturation-seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="20 conversations, 15 s phases")
    args = parser.parse_args(argv)
    if args.quick:
        args.conversations, args.realistic_seconds = "20", 15.0
        args.saturation_conversations, args.saturation_seconds = 5, 10.0
    args.loads = [int(n) for n in args.conversations.split(",")]
    return args


def _reset_postgres() -> None:
    """Fresh product and tracker databases for the production profile."""

    async def reset() -> None:
        import asyncpg  # type: ignore[import-untyped]

        connection = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        try:
            for name in ("shopbot_bench", "shopbot_bench_tracker"):
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(reset())
    settings = prod_environment(PROD_ENV)
    preflight(settings)  # creates both databases again
    prepare_database(settings["DATABASE_URL"], demo=True)


async def _phases(
    plan: list[tuple[str, Phase]],
    paths: dict[str, Callable[[aiohttp.ClientSession], Callable[[], Chat]]],
    pairs: list[tuple[str, str]],
    pids: dict[str, int],
    seed: int,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        for key, phase in plan:
            say(f"running {key} ({dt.datetime.now().strftime('%H:%M:%S')}) …")
            waited = await settle(pids)
            summary = summarise(await run_phase(phase, paths[phase.path](http), pairs, pids, seed))
            summary["settle_seconds_before"] = waited
            summary.pop("turn_records", None)
            results[key] = summary
            say(f"  {_line(summary)}")
    return results


def _line(s: dict[str, Any]) -> str:
    lat = s["latency"]

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0f} ms"

    errors = ", ".join(f"{k} {v}" for k, v in sorted(s["errors_by_kind"].items()))
    cpu = ", ".join(f"{k} {v * 100:.0f}%" for k, v in s["cpu_share_of_one_core"].items())
    return (
        f"{s['completed_turns_per_s']:.1f} turns/s completed (offered {s['offered_turns_per_s']:.1f}), "
        f"p50 {fmt(lat['p50_ms'])}, p95 {fmt(lat['p95_ms'])}, p99 {fmt(lat['p99_ms'])}, "
        f"errors {s['errors']}{f' ({errors})' if errors else ''}; CPU {cpu}"
    )


def _ws(urls: list[str]) -> Callable[[aiohttp.ClientSession], Callable[[], Chat]]:
    def factory(http: aiohttp.ClientSession) -> Callable[[], Chat]:
        spread = itertools.cycle(urls)
        return lambda: WsChat(http, next(spread))

    return factory


def _plan(args: argparse.Namespace, paths: list[str]) -> list[tuple[str, Phase]]:
    plan = []
    for path in paths:
        loads = args.loads if path != "bare Rasa" else args.loads[:1]
        for n in loads:
            plan.append(
                (
                    f"realistic {n} / {path}",
                    Phase("realistic", path, n, args.realistic_seconds, *THINK),
                )
            )
        plan.append(
            (
                f"saturation / {path}",
                Phase(
                    "saturation",
                    path,
                    args.saturation_conversations,
                    args.saturation_seconds,
                    0.0,
                    0.0,
                ),
            )
        )
    return plan


def _pids(stack: Stack) -> dict[str, int]:
    return {name: p.pid for name, p in stack.processes.items()}


def measure_embedded(args: argparse.Namespace) -> dict[str, Any]:
    database_url = fresh_database()
    pairs = order_pairs()
    env = {
        "DATABASE_URL": database_url,
        "ACTION_SERVER_URL": f"http://127.0.0.1:{PORTS.actions}/webhook",
        "SURVEY_FATIGUE_DAYS": "0",
        "RATE_LIMIT_MESSAGES": "1000",
        **TRUSTED_PROXY_ENV,
    }
    say("starting the embedded default …")
    with running(PORTS, env=env, log_dir=LOGS) as stack:
        paths = {
            "embedded": _ws([f"ws://127.0.0.1:{PORTS.web}/ws"]),
            "bare Rasa": lambda http: (
                lambda: RestChat(http, f"http://127.0.0.1:{PORTS.rasa}/webhooks/rest/webhook")
            ),
        }
        results = asyncio.run(
            _phases(_plan(args, list(paths)), paths, pairs, _pids(stack), args.seed)
        )
        results.update(asyncio.run(_stock_rasa(stack, args, pairs)))
        return results


async def _stock_rasa(
    stack: Stack, args: argparse.Namespace, pairs: list[tuple[str, str]]
) -> dict[str, Any]:
    """Saturation against a stock `rasa run` (no rasa_ext speed-ups), same model and
    action server: the target's "one bare rasa run process"."""
    holder: dict[str, Any] = {"phases": {}}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        await stock_rasa_phase(stack, args, pairs, http, holder)
    return dict(holder["phases"])


def measure_prod(args: argparse.Namespace) -> dict[str, Any]:
    say("resetting the production profile's PostgreSQL databases …")
    _reset_postgres()
    pairs = order_pairs()  # the same demo shop (deterministic) as the SQLite database
    say("starting the production profile …")
    started = time.monotonic()
    stack = start_prod(PROD_PORTS, env=PROD_ENV, log_dir=LOGS / "prod")
    try:
        say(f"production profile healthy after {time.monotonic() - started:.0f} s")
        paths = {"production": _ws([f"ws://127.0.0.1:{p}/ws" for p in PROD_PORTS.web])}
        results = asyncio.run(
            _phases(_plan(args, list(paths)), paths, pairs, _pids(stack), args.seed)
        )
        results["stack_after"] = stack.alive()
        return results
    finally:
        stack.stop()


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or not b else f"{a / b:.2f}×"


def report(results: dict[str, Any], args: argparse.Namespace) -> list[str]:
    lines = [
        "",
        "| load | embedded default | production profile | ratio prod / embedded |",
        "|---|---|---|---|",
    ]
    for n in args.loads:
        e, p = results[f"realistic {n} / embedded"], results[f"realistic {n} / production"]
        for label, key in (("p50", "p50_ms"), ("p95", "p95_ms")):
            lines.append(
                f"| realistic {n}, {label} | {e['latency'][key] or 0:.0f} ms | "
                f"{p['latency'][key] or 0:.0f} ms | {_ratio(p['latency'][key], e['latency'][key])} |"
            )
        lines.append(
            f"| realistic {n}, completed turns/s; errors | {e['completed_turns_per_s']:.1f}; {e['errors']} | "
            f"{p['completed_turns_per_s']:.1f}; {p['errors']} | "
            f"{_ratio(p['completed_turns_per_s'], e['completed_turns_per_s'])} |"
        )
    e, p = results["saturation / embedded"], results["saturation / production"]
    b = results["saturation / bare Rasa"]
    lines.append(
        f"| saturation {args.saturation_conversations}, turns/s; errors | {e['completed_turns_per_s']:.1f}; "
        f"{e['errors']} | {p['completed_turns_per_s']:.1f}; {p['errors']} | "
        f"{_ratio(p['completed_turns_per_s'], e['completed_turns_per_s'])} |"
    )
    rb = results[f"realistic {args.loads[0]} / bare Rasa"]
    rp = results[f"realistic {args.loads[0]} / production"]
    lines += [
        "",
        f"one bare Rasa process (REST, in-memory tracker): saturation {b['completed_turns_per_s']:.1f} turns/s; "
        f"realistic {args.loads[0]} p50 {rb['latency']['p50_ms'] or 0:.0f} ms, p95 {rb['latency']['p95_ms'] or 0:.0f} ms",
        f"production / one bare Rasa: saturation turns/s {_ratio(p['completed_turns_per_s'], b['completed_turns_per_s'])}; "
        f"realistic {args.loads[0]} p50 {_ratio(rp['latency']['p50_ms'], rb['latency']['p50_ms'])}",
    ]
    stock = results.get("saturation / stock rasa run")
    if stock is not None:
        lines.append(
            f"one stock `rasa run` (no rasa_ext speed-ups): saturation {stock['completed_turns_per_s']:.1f} "
            f"turns/s; production / stock rasa run: {_ratio(p['completed_turns_per_s'], stock['completed_turns_per_s'])}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = "python -m bench.chat_load.prod " + shlex.join(sys.argv[1:] if argv is None else argv)
    if not MODEL.exists():
        say("No trained model; run `make train` first.")
        return 2
    header = [
        f"command: {command.rstrip()}",
        f"date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: {machine()}",
        f"model: {model_line()}",
    ]
    for line in header:
        say(line)
    results: dict[str, Any] = {}
    with deferred_interrupts() as interrupts:
        if interrupts:
            return 130
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            results.update(measure_embedded(args))
            results.update(measure_prod(args))
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
