"""Chat load benchmark: full stack (WebSocket → web service → Rasa → actions) against bare
Rasa (its REST channel; same Rasa process, action server and model) in the same run.

    .venv-app/bin/python -m bench.chat_load [--quick] [--realistic-conversations 200]
        [--think-min 5] [--think-max 15] [--realistic-seconds 300]
        [--saturation-conversations 50] [--saturation-seconds 60]

Two load models, never mixed (without think time, Little's law makes mean latency = N /
throughput, so a latency figure needs think time), each measured for the full stack and
then for bare Rasa at the same offered load:
* realistic  - N simulated customers, each waiting a random think time (5-15 s) before
               every message; p50/p95/p99 latency and errors; the web service's RSS every
               10 s. Goal: p95 <= 250 ms at N = 200, p50 <= 1.3x bare Rasa's, no errors;
* saturation - M customers with no think time; turns/s. Goal: the full stack at least
               1.0x one bare Rasa process (stretch 1.5x). Saturation is also measured
               against a stock `rasa run` (same model and action server, without the
               rasa_ext speed-ups that our stack's Rasa runs with): the target's "one bare
               `rasa run` process" (--no-stock-baseline skips it).

A simulated customer's conversation: "hi" → "where is my order" → <order number> →
<email> (status + survey question) → "4" → "skip" (thanks), then a new conversation (new
connection, new sender) with another real order from the demo database. A turn is one
message and all the bot's replies, timed from sending to the arrival of the last reply.
On the WebSocket a turn ends once typing-off has come and then 150 ms pass without a
frame after the last bot message; those 150 ms are not counted (the latency ends at the
last message's arrival). Errors: an error frame, a system message, a timeout (> 30 s), a
turn without a bot reply, a failed connection. After an error the customer starts a new
conversation. Before each phase the benchmark waits until the stack is idle (at most
90 s) so a phase's backlog doesn't spill into the next.

The stack runs on ports 28000 (web), 25005 (rasa), 25055 (actions) on a fresh SQLite demo
database under var/bench/chat_load/; results also go to var/bench/chat_load/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp

from bench.chat_load.clients import QUIET, TURN_TIMEOUT, Chat, RestChat, WsChat, script
from bench.chat_load.load import (
    RSS_INTERVAL,
    Phase,
    RssSampler,
    loadavg,
    run_phase,
    settle,
    slope_per_minute,
    summarise,
)
from bench.ws import TRUSTED_PROXY_ENV
from bot.launcher import Stack, StackPorts, _set_secrets, running

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "bench" / "chat_load"
DATABASE = OUT / "bench.db"
LOGS = OUT / "logs"
RESULTS = OUT / "results.json"
MODEL = ROOT / "models" / "current.tar.gz"
FINGERPRINT = ROOT / "models" / ".fingerprint"
PORTS = StackPorts(web=28000, rasa=25005, actions=25055)
STOCK_RASA_PORT = 25006  # the saturation baseline without rasa_ext speed-ups

DEFAULTS: dict[str, float] = {
    "realistic_conversations": 200,
    "think_min": 5.0,
    "think_max": 15.0,
    "realistic_seconds": 300.0,
    "saturation_conversations": 50,
    "saturation_seconds": 60.0,
}
QUICK: dict[str, float] = {
    "realistic_conversations": 20,
    "think_min": 1.0,
    "think_max": 3.0,
    "realistic_seconds": 15.0,
    "saturation_conversations": 5,
    "saturation_seconds": 10.0,
}

TARGET_P95_MS = 250.0
TARGET_P50_RATIO = 1.3
TARGET_SATURATION_RATIO = 1.0
STRETCH_SATURATION_RATIO = 1.5


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chat_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--realistic-conversations", type=int)
    parser.add_argument("--think-min", type=float, help="seconds")
    parser.add_argument("--think-max", type=float, help="seconds")
    parser.add_argument("--realistic-seconds", type=float, help="per path")
    parser.add_argument("--saturation-conversations", type=int)
    parser.add_argument("--saturation-seconds", type=float, help="per path")
    parser.add_argument("--seed", type=int, default=1, help="simulated customers' randomness")
    parser.add_argument(
        "--no-stock-baseline",
        dest="stock_baseline",
        action="store_false",
        help="skip the saturation phase against a stock `rasa run` without rasa_ext speed-ups",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small numbers: a smoke run of about a minute"
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    for name, value in base.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.realistic_conversations = int(args.realistic_conversations)
    args.saturation_conversations = int(args.saturation_conversations)
    if (
        not 1 <= args.realistic_conversations <= 2000
        or not 1 <= args.saturation_conversations <= 2000
    ):
        parser.error("conversations must be between 1 and 2000")
    if not 0 <= args.think_min <= args.think_max <= 600:
        parser.error("need 0 <= --think-min <= --think-max <= 600")
    if not 1 <= args.realistic_seconds <= 3600 or not 1 <= args.saturation_seconds <= 3600:
        parser.error("phase seconds must be between 1 and 3600")
    return args


# --- setup ----------------------------------------------------------------------------------


def fresh_database() -> str:
    """A new SQLite database with the schema and the demo shop; returns its URL."""
    OUT.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    url = f"sqlite+aiosqlite:///{DATABASE}"
    env = {**os.environ, "DATABASE_URL": url}
    for command in ("migrate", "demo"):
        subprocess.run(
            [sys.executable, "-m", "bot", command],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=600,
            stdout=subprocess.DEVNULL,
        )
    return url


def order_pairs() -> list[tuple[str, str]]:
    """(order number, customer email) for every order of a known customer."""
    with sqlite3.connect(f"file:{DATABASE}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT o.number, c.email FROM orders o JOIN customers c ON c.id = o.customer_id "
            "WHERE c.email IS NOT NULL AND c.email != '' AND NOT c.is_anonymous ORDER BY o.number"
        ).fetchall()
    return [(str(number), str(email)) for number, email in rows]


def machine() -> str:
    memory = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    load = loadavg()
    return (
        f"{os.cpu_count()} cores (os.cpu_count), {memory} RAM (MemTotal), {platform.machine()}, "
        f"Linux {platform.release()}, load average at start {load}"
    )


def training_fingerprint() -> str:
    """The Makefile's fingerprint of the training files as they are now."""
    data = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "data").rglob("*.yml"))
    files = ["config.yml", "domain.yml", *data]
    listing = "".join(
        f"{hashlib.sha256((ROOT / f).read_bytes()).hexdigest()}  {f}\n" for f in files
    )
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def model_line() -> str:
    stat = MODEL.stat()
    fingerprint = FINGERPRINT.read_text().strip() if FINGERPRINT.exists() else "missing"
    built = dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    current = training_fingerprint()
    state = "matches" if current == fingerprint else f"does NOT match ({current})"
    return (
        f"{MODEL.relative_to(ROOT)} ({stat.st_size / 2**20:.1f} MiB, built {built}), "
        f"fingerprint {fingerprint} (models/.fingerprint; {state} the training files now)"
    )


@contextmanager
def deferred_interrupts() -> Iterator[list[int]]:
    """Ctrl-C / SIGTERM while the stack starts would leave its processes running (the
    launcher only stops them once it has returned them): note the signal, act after."""
    received: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


# --- measuring ------------------------------------------------------------------------------


def say(line: str = "") -> None:
    print(line, flush=True)


async def warm_up(chat: Chat, pair: tuple[str, str]) -> str:
    """One unmeasured conversation (loads lazily initialised code paths and caches)."""
    try:
        problem = await chat.open()
        if problem is not None:
            return problem
        latencies = []
        for step, text, expected in script(*pair):
            turn = await chat.say(step, text, expected)
            if turn.error is not None:
                return f"{step}: {turn.error}"
            latencies.append(f"{(turn.latency or 0) * 1000:.0f}")
            if turn.unexpected:
                latencies[-1] += "(unexpected reply)"
        return "ok, turns " + "/".join(latencies) + " ms"
    finally:
        await chat.close()


def _alive(stack: Stack) -> str:
    dead = [name for name, p in stack.processes.items() if p.poll() is not None]
    return "all running" if not dead else "STOPPED: " + ", ".join(dead)


async def measure(
    stack: Stack, args: argparse.Namespace, pairs: list[tuple[str, str]]
) -> dict[str, Any]:
    results: dict[str, Any] = {"phases": {}}
    pids = {name: process.pid for name, process in stack.processes.items()}
    connector = aiohttp.TCPConnector(limit=0)  # 200+ concurrent connections
    async with aiohttp.ClientSession(connector=connector) as http:
        ws_url = f"ws://127.0.0.1:{PORTS.web}/ws"
        rest_url = f"http://127.0.0.1:{PORTS.rasa}/webhooks/rest/webhook"
        paths: dict[str, Callable[[], Chat]] = {
            "full stack": lambda: WsChat(http, ws_url),
            "bare Rasa": lambda: RestChat(http, rest_url),
        }
        for path, new_chat in paths.items():
            outcome = await warm_up(new_chat(), pairs[0])
            results[f"warm_up_{path}"] = outcome
            say(f"warm-up ({path}, 1 unmeasured conversation): {outcome}")
            if "unexpected" in outcome or not outcome.startswith("ok"):
                results["script_followed"] = False
                say(
                    "WARNING: the bot did not follow the scripted conversation (model, domain "
                    "and actions out of step?); the figures below measure another conversation"
                )

        plan = [
            Phase(
                "realistic",
                path,
                args.realistic_conversations,
                args.realistic_seconds,
                args.think_min,
                args.think_max,
            )
            for path in paths
        ] + [
            Phase(
                "saturation", path, args.saturation_conversations, args.saturation_seconds, 0.0, 0.0
            )
            for path in paths
        ]
        for phase in plan:
            key = f"{phase.load_model} / {phase.path}"
            say(
                f"running {key}: {phase.conversations} conversations for {phase.seconds:.0f} s "
                f"(started {dt.datetime.now().strftime('%H:%M:%S')}) …"
            )
            waited = await settle(pids)
            sampler = None
            if phase.load_model == "realistic" and phase.path == "full stack":
                sampler = RssSampler(pids["web"])
                sampler.start()
            try:
                run = await run_phase(phase, paths[phase.path], pairs, pids, args.seed)
            finally:
                if sampler is not None:
                    await sampler.stop()
            summary = summarise(run)
            summary["stack_after"] = _alive(stack)
            summary["settle_seconds_before"] = waited
            if sampler is not None:
                results["web_rss"] = rss_summary(sampler.samples)
            results["phases"][key] = summary
        if args.stock_baseline:
            await stock_rasa_phase(stack, args, pairs, http, results)
    return results


@contextmanager
def stock_rasa(stack: Stack) -> Iterator[subprocess.Popen[bytes]]:
    """Rasa's own `rasa run` without our speed-ups (rasa_ext/speedups.py), same model and
    action server: the saturation target's "one bare rasa run process"."""
    env = {
        **os.environ,
        "ACTION_SERVER_URL": f"http://127.0.0.1:{PORTS.actions}/webhook",
        "SANIC_HOST": "127.0.0.1",
        "PYTHONPATH": str(ROOT),
    }
    _set_secrets(env)  # the channel's secret and the action server's token
    log = (LOGS / "stock-rasa.log").open("wb")
    process = subprocess.Popen(
        [
            str(ROOT / ".venv-rasa" / "bin" / "rasa"),
            "run",
            "--model",
            str(MODEL),
            "--interface",
            "127.0.0.1",
            "--port",
            str(STOCK_RASA_PORT),
            "--endpoints",
            "endpoints.yml",
            "--credentials",
            "credentials.yml",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


async def _wait_ready(http: aiohttp.ClientSession, url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            async with http.get(url) as response:
                if response.status == 200:
                    return True
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(1.0)
    return False


async def stock_rasa_phase(
    stack: Stack,
    args: argparse.Namespace,
    pairs: list[tuple[str, str]],
    http: aiohttp.ClientSession,
    results: dict[str, Any],
) -> None:
    path = "stock rasa run"
    say(f"starting a stock `rasa run` on :{STOCK_RASA_PORT} (no rasa_ext speed-ups) …")
    with stock_rasa(stack) as process:
        if not await _wait_ready(http, f"http://127.0.0.1:{STOCK_RASA_PORT}/", 180):
            say("stock rasa run did not start; its phase is skipped")
            return
        url = f"http://127.0.0.1:{STOCK_RASA_PORT}/webhooks/rest/webhook"
        pids = {"stock rasa": process.pid, "actions": stack.processes["actions"].pid}
        outcome = await warm_up(RestChat(http, url), pairs[0])
        say(f"warm-up ({path}, 1 unmeasured conversation): {outcome}")
        phase = Phase(
            "saturation", path, args.saturation_conversations, args.saturation_seconds, 0.0, 0.0
        )
        say(
            f"running saturation / {path}: {phase.conversations} conversations for "
            f"{phase.seconds:.0f} s …"
        )
        waited = await settle(pids)
        run = await run_phase(phase, lambda: RestChat(http, url), pairs, pids, args.seed)
        summary = summarise(run)
        summary["stack_after"] = "running" if process.poll() is None else "STOPPED"
        summary["settle_seconds_before"] = waited
        results["phases"][f"saturation / {path}"] = summary


def rss_summary(samples: list[tuple[float, float]]) -> dict[str, Any]:
    values = [v for _, v in samples]
    half = [(t, v) for t, v in samples if t >= samples[-1][0] / 2] if samples else []
    return {
        "interval_s": RSS_INTERVAL,
        "samples": [[round(t, 1), round(v, 2)] for t, v in samples],
        "first_mb": values[0] if values else None,
        "last_mb": values[-1] if values else None,
        "max_mb": max(values) if values else None,
        "slope_mb_per_min": slope_per_minute(samples),
        "slope_second_half_mb_per_min": slope_per_minute(half),
    }


# --- report ---------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def _errors(summary: dict[str, Any]) -> str:
    kinds = summary["errors_by_kind"]
    detail = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    return f"{summary['errors']}" + (f" ({detail})" if detail else "")


def phase_lines(summary: dict[str, Any], saturation: bool) -> list[str]:
    latency = summary["latency"]
    label = f"  {summary['path']:<10}"
    throughput = (
        f"{summary['completed_turns_per_s']:.1f} turns/s"
        if saturation
        else f"offered {summary['offered_turns_per_s']:.1f} turns/s"
    )
    lines = [
        f"{label} {throughput}, completed {summary['completed_turns']} turns, "
        f"p50 {_ms(latency['p50_ms'])}, p95 {_ms(latency['p95_ms'])}, "
        f"p99 {_ms(latency['p99_ms'])}, max {_ms(latency['max_ms'])}, errors {_errors(summary)}"
    ]
    steps = ", ".join(
        f"{step} {_ms(s['p50_ms'])}/{_ms(s['p95_ms'])}".replace(" ms/", "/")
        for step, s in summary["latency_by_step"].items()
    )
    lines.append(f"{'':<13}p50/p95 by step: {steps}")
    cpu = ", ".join(f"{k} {v * 100:.0f}%" for k, v in summary["cpu_share_of_one_core"].items())
    lines.append(
        f"{'':<13}conversations {summary['conversations_finished']} finished / "
        f"{summary['conversations_started']} started; unexpected replies "
        f"{summary['unexpected_replies']}; late bot frames {summary['late_bot_frames']}; "
        f"idle wait before {summary['settle_seconds_before']:.0f} s; "
        f"load avg at start {summary['load_average_at_start']}; stack {summary['stack_after']}"
    )
    lines.append(f"{'':<13}CPU (% of one core): {cpu}")
    return lines


def report(results: dict[str, Any], args: argparse.Namespace) -> list[str]:
    phases = results["phases"]
    rf, rb = phases["realistic / full stack"], phases["realistic / bare Rasa"]
    sf, sb = phases["saturation / full stack"], phases["saturation / bare Rasa"]
    nominal = args.realistic_conversations / ((args.think_min + args.think_max) / 2 or 1)
    lines = [
        "",
        f"[realistic] {args.realistic_conversations} conversations, think time uniform "
        f"{args.think_min:g}–{args.think_max:g} s before every message, {args.realistic_seconds:g} s "
        f"per path; nominal offered load {nominal:.1f} turns/s (N / mean think time)",
        *phase_lines(rf, saturation=False),
        *phase_lines(rb, saturation=False),
    ]
    rss = results.get("web_rss", {})
    if rss.get("samples"):
        lines.append(
            f"  web service RSS (every {RSS_INTERVAL:g} s, {len(rss['samples'])} samples, full-stack "
            f"phase): first {rss['first_mb']:.1f} MB, last {rss['last_mb']:.1f} MB, "
            f"max {rss['max_mb']:.1f} MB, slope {_signed(rss['slope_mb_per_min'])} MB/min "
            f"(second half {_signed(rss['slope_second_half_mb_per_min'])} MB/min); target: flat"
        )
    lines += [
        "",
        f"[saturation] {args.saturation_conversations} conversations, no think time, "
        f"{args.saturation_seconds:g} s per path",
        *phase_lines(sf, saturation=True),
        *phase_lines(sb, saturation=True),
    ]
    stock = phases.get("saturation / stock rasa run")
    if stock is not None:
        lines += phase_lines(stock, saturation=True)
    p95 = rf["latency"]["p95_ms"]
    p50_ratio = _ratio(rf["latency"]["p50_ms"], rb["latency"]["p50_ms"])
    p95_ratio = _ratio(p95, rb["latency"]["p95_ms"])
    sat_ratio = _ratio(sf["completed_turns_per_s"], sb["completed_turns_per_s"])
    full_errors = rf["errors"] + sf["errors"]
    targets = {
        "realistic_full_stack_p95_ms": [
            p95,
            TARGET_P95_MS,
            None if p95 is None else p95 <= TARGET_P95_MS,
        ],
        "realistic_p50_ratio_full_over_bare": [
            p50_ratio,
            TARGET_P50_RATIO,
            None if p50_ratio is None else p50_ratio <= TARGET_P50_RATIO,
        ],
        "full_stack_errors": [full_errors, 0, full_errors == 0],
        "saturation_ratio_full_over_bare": [
            sat_ratio,
            TARGET_SATURATION_RATIO,
            None if sat_ratio is None else sat_ratio >= TARGET_SATURATION_RATIO,
        ],
        "saturation_ratio_stretch": [
            sat_ratio,
            STRETCH_SATURATION_RATIO,
            None if sat_ratio is None else sat_ratio >= STRETCH_SATURATION_RATIO,
        ],
    }
    results["ratios"] = {
        "realistic_p50_full_over_bare": p50_ratio,
        "realistic_p95_full_over_bare": p95_ratio,
        "realistic_p99_full_over_bare": _ratio(rf["latency"]["p99_ms"], rb["latency"]["p99_ms"]),
        "saturation_turns_per_s_full_over_bare": sat_ratio,
    }
    results["targets"] = {
        k: {"value": v, "target": t, "met": m} for k, (v, t, m) in targets.items()
    }
    lines += [
        "",
        "ratios (full stack / bare Rasa): realistic p50 "
        f"{_x(p50_ratio)}, p95 {_x(p95_ratio)}, "
        f"p99 {_x(results['ratios']['realistic_p99_full_over_bare'])}; saturation turns/s {_x(sat_ratio)}",
        "targets:",
        f"  realistic full-stack p95 <= {TARGET_P95_MS:.0f} ms: {_ms(p95)}  "
        f"{_verdict(targets['realistic_full_stack_p95_ms'][2])}",
        f"  realistic full-stack p50 <= {TARGET_P50_RATIO}× bare Rasa p50: {_x(p50_ratio)} "
        f"({_ms(rf['latency']['p50_ms'])} vs {_ms(rb['latency']['p50_ms'])})  "
        f"{_verdict(targets['realistic_p50_ratio_full_over_bare'][2])}",
        f"  zero errors (full stack, both load models): {full_errors} "
        f"(bare Rasa: {rb['errors'] + sb['errors']})  {_verdict(full_errors == 0)}",
        f"  saturation full stack >= {TARGET_SATURATION_RATIO}× bare Rasa turns/s: {_x(sat_ratio)} "
        f"({sf['completed_turns_per_s']:.1f} vs {sb['completed_turns_per_s']:.1f})  "
        f"{_verdict(targets['saturation_ratio_full_over_bare'][2])}; stretch "
        f"{STRETCH_SATURATION_RATIO}×: {_verdict(targets['saturation_ratio_stretch'][2])}",
    ]
    if stock is not None:
        stock_ratio = _ratio(sf["completed_turns_per_s"], stock["completed_turns_per_s"])
        results["ratios"]["saturation_turns_per_s_full_over_stock_rasa"] = stock_ratio
        lines.append(
            f"  saturation full stack / stock `rasa run` (no speed-ups) turns/s: {_x(stock_ratio)} "
            f"({sf['completed_turns_per_s']:.1f} vs {stock['completed_turns_per_s']:.1f})  "
            f"{_verdict(None if stock_ratio is None else stock_ratio >= TARGET_SATURATION_RATIO)}; "
            f"stretch {STRETCH_SATURATION_RATIO}×: "
            f"{_verdict(None if stock_ratio is None else stock_ratio >= STRETCH_SATURATION_RATIO)}"
        )
    if rss.get("samples"):
        lines.append(
            f"  web service RSS flat: {rss['first_mb']:.1f} → {rss['last_mb']:.1f} MB, "
            f"{_signed(rss['slope_mb_per_min'])} MB/min (judge from the samples in results.json)"
        )
    return lines


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = "python -m bench.chat_load " + shlex.join(sys.argv[1:] if argv is None else argv)
    if not MODEL.exists():
        say(f"No trained model at {MODEL.relative_to(ROOT)}; train one first (not done here).")
        return 2
    header = [
        f"command: {command.rstrip()}",
        f"date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: {machine()}",
        f"model: {model_line()}",
        "load generator: this process (one asyncio loop, aiohttp) on the same machine, sharing "
        "its cores with the stack; traffic to 127.0.0.1 only",
        f"stack: web :{PORTS.web} (WebSocket /ws) → rasa :{PORTS.rasa} → actions :{PORTS.actions}; "
        f"bare Rasa = POST :{PORTS.rasa}/webhooks/rest/webhook on the same Rasa process "
        "(`python -m rasa_ext run`, with the speed-ups); saturation also against a stock "
        f"`rasa run` on :{STOCK_RASA_PORT} (same model and action server, no speed-ups); "
        f"SQLite demo DB {DATABASE.relative_to(ROOT)}; SURVEY_FATIGUE_DAYS=0, RATE_LIMIT_MESSAGES=1000",
        "conversation: hi → where is my order → <order number> → <email> → 4 → skip (6 turns), "
        f"then a new one; turn timeout {TURN_TIMEOUT:g} s; WebSocket turn ends {QUIET * 1000:.0f} ms "
        "after the last bot message (not counted)",
    ]
    for line in header:
        say(line)
    try:
        database_url = fresh_database()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        say(f"could not create the demo database: {exc} (see its output above)")
        return 1
    pairs = order_pairs()
    if not pairs:
        say("The demo database has no orders with a customer email.")
        return 1
    say(f"demo data: {len(pairs)} orders with a customer email; each conversation picks one")
    env = {
        "DATABASE_URL": database_url,
        "ACTION_SERVER_URL": f"http://127.0.0.1:{PORTS.actions}/webhook",
        "SURVEY_FATIGUE_DAYS": "0",
        "RATE_LIMIT_MESSAGES": "1000",
        **TRUSTED_PROXY_ENV,  # per-address limits on; each simulated customer its address
    }
    if LOGS.exists():
        for old in LOGS.glob("*.log"):
            old.unlink()
    say(f"starting the stack (logs in {LOGS.relative_to(ROOT)}) …")
    started = time.monotonic()
    model_stamp = MODEL.stat().st_mtime_ns
    with deferred_interrupts() as interrupts, running(PORTS, env=env, log_dir=LOGS) as stack:
        try:
            if interrupts:
                raise KeyboardInterrupt
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, _terminate)  # SIGTERM also stops the stack
            say(f"stack healthy after {time.monotonic() - started:.0f} s")
            if MODEL.stat().st_mtime_ns != model_stamp:
                say("WARNING: models/current.tar.gz changed while Rasa was starting")
            results = asyncio.run(measure(stack, args, pairs))
        finally:  # nothing interrupts the stack's (bounded) shutdown
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    lines = report(results, args)
    for line in lines:
        say(line)
    results.update(
        command=command.rstrip(),
        header=header,
        report=lines,
        arguments={k: v for k, v in vars(args).items()},
        order_pairs=len(pairs),
    )
    RESULTS.write_text(json.dumps(results, indent=1, default=str) + "\n")
    say(f"\nfull results: {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; the stack is stopped", file=sys.stderr)
        sys.exit(130)
