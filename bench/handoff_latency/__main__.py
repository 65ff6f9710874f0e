"""Live hand-off latency: "time from an agent's send to the customer's widget and back, p95
at 50 open conversations (target <= 100 ms on this machine)".

    .venv-app/bin/python -m bench.handoff_latency [--conversations 50] [--messages 20]
        [--pause-min 0.2] [--pause-max 1.8] [--max-seconds 120] [--seed 1]

Setup: a fresh SQLite database under var/bench/handoff_latency/ (`python -m bot migrate`,
`python -m bot staff demo`), then only the web service (`python -m bot serve`, port 29000,
RASA_URL pointing at a closed port: while a conversation is with an agent the web service
never calls Rasa). N customer WebSockets say hello and one message (answered with the
"try again" system message, Rasa being absent); each conversation is escalated in the
database (bot.domain.escalations.escalate), the demo agent signs in over the console API,
claims all N and opens one console WebSocket per conversation, watching it.

Measured, all N conversations open, M rounds per conversation interleaved across the
conversations, a random pause (--pause-min..--pause-max s) before every hop:
(a) agent -> customer: POST /console/api/conversations/{id}/messages sent -> the agent's
    message frame arrives on the customer's WebSocket;
(b) customer -> agent: {"type": "message"} sent on the customer's WebSocket -> the event
    arrives on the console WebSocket watching the conversation;
(c) round trip = (a) + (b) of the same round;
baseline: {"type": "nonsense"} on the same customer WebSocket -> the server's error frame
    (a no-op round trip through the same server and sockets: the floor).
A hop over 5 s is an error (not in the percentiles). Results also go to
var/bench/handoff_latency/results.json; the web service's log to .../web.log.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
from sqlalchemy import select

from bench.handoff_latency.measure import (
    TIMEOUT,
    Conversation,
    FrameSocket,
    Samples,
    SocketClosed,
    Staff,
    is_system_message,
    one_round,
    run_conversation,
)
from bench.host import cpu_seconds, loadavg, machine, python, say
from bench.stats import summary_ms
from bench.ws import TRUSTED_PROXY_ENV, simulated_client

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "bench" / "handoff_latency"
DATABASE = OUT / "bench.db"
RESULTS = OUT / "results.json"
WEB_LOG = OUT / "web.log"
HOST = "127.0.0.1"
WEB_PORT = 29000
RASA_URL = "http://127.0.0.1:29999"  # nothing listens there
BASE_URL = f"http://{HOST}:{WEB_PORT}"
AGENT_EMAIL = "agent@example.com"
AGENT_PASSWORD = "demo-password-123"
TARGET_P95_MS = 100.0
STARTUP_SECONDS = 60.0
SETUP_TIMEOUT = 15.0  # seconds for each setup step of one conversation


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.handoff_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--conversations", type=int, default=50, help="open at once (default 50)")
    parser.add_argument("--messages", type=int, default=20, help="measured rounds per conversation")
    parser.add_argument("--pause-min", type=float, default=0.2, help="seconds before each hop")
    parser.add_argument("--pause-max", type=float, default=1.8, help="seconds before each hop")
    parser.add_argument(
        "--max-seconds", type=float, default=120.0, help="no round starts after this (default 120)"
    )
    parser.add_argument("--seed", type=int, default=1, help="pauses' randomness")
    parser.add_argument(
        "--no-typing",
        dest="typing",
        action="store_false",
        help="the agent does not send typing frames before each reply (default: it does)",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run on this PostgreSQL database instead of SQLite; it is dropped and recreated "
        "(e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/handoff_bench)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.conversations <= 500:
        parser.error("--conversations must be between 1 and 500")
    if not 1 <= args.messages <= 1000:
        parser.error("--messages must be between 1 and 1000")
    if not 0 <= args.pause_min <= args.pause_max <= 30:
        parser.error("need 0 <= --pause-min <= --pause-max <= 30")
    if not 10 <= args.max_seconds <= 3600:
        parser.error("--max-seconds must be between 10 and 3600")
    return args


# --- machine ----------------------------------------------------------------------------------


# --- setup: database and web service ----------------------------------------------------------


def fresh_database(postgres_url: str | None = None) -> str:
    """A new database with the schema and the demo staff accounts; returns its URL."""
    OUT.mkdir(parents=True, exist_ok=True)
    if postgres_url:
        name = postgres_url.rsplit("/", 1)[1]
        for sql in (f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"):
            subprocess.run(
                ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", sql],
                check=True,
                timeout=60,
                stdout=subprocess.DEVNULL,
            )
        url = postgres_url
    else:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
        url = f"sqlite+aiosqlite:///{DATABASE}"
    env = {**os.environ, "DATABASE_URL": url}
    for command in (["migrate"], ["staff", "demo"]):
        subprocess.run(
            [python(), "-m", "bot", *command],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=300,
            stdout=subprocess.DEVNULL,
        )
    return url


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex((HOST, port)) == 0


def start_web(database_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "WEB_HOST": HOST,
        "WEB_PORT": str(WEB_PORT),
        "RASA_URL": RASA_URL,
        "RATE_LIMIT_MESSAGES": "100000",
        **TRUSTED_PROXY_ENV,  # per-address limits on; each customer its address
    }
    with WEB_LOG.open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [python(), "-m", "bot", "serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches only us; we stop it ourselves
        )


def stop_web(process: subprocess.Popen[bytes]) -> str:
    if process.poll() is not None:
        return f"had already exited (code {process.returncode})"
    process.terminate()
    try:
        process.wait(timeout=15)
        return f"stopped (code {process.returncode})"
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        return "killed after 15 s"


async def wait_healthy(http: aiohttp.ClientSession, process: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < STARTUP_SECONDS:
        if process.poll() is not None:
            raise RuntimeError(f"the web service exited (code {process.returncode}); see {WEB_LOG}")
        try:
            async with http.get(
                f"{BASE_URL}/healthz", timeout=aiohttp.ClientTimeout(total=3)
            ) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"/healthz did not answer 200 within {STARTUP_SECONDS:.0f} s")


# --- setup: conversations, escalations, console -----------------------------------------------


async def open_customer(http: aiohttp.ClientSession) -> tuple[FrameSocket, str]:
    """A widget tab: hello, session, one message answered by the system's "try again"
    (Rasa is absent). Returns the socket and the message's client id."""
    ws = await asyncio.wait_for(
        http.ws_connect(f"ws://{HOST}:{WEB_PORT}/ws", headers=simulated_client()), SETUP_TIMEOUT
    )
    sock = FrameSocket(ws)
    deadline = time.perf_counter() + SETUP_TIMEOUT
    await sock.send({"type": "hello", "token": None})
    if await sock.wait_for(lambda f: f.get("type") == "session", deadline) is None:
        raise RuntimeError("no session frame")
    client_id = uuid.uuid4().hex
    await sock.send({"type": "message", "text": "I need a person", "client_id": client_id})
    if await sock.wait_for(is_system_message, deadline) is None:
        raise RuntimeError("no answer to the first message")
    return sock, client_id


async def escalate_all(database_url: str, client_ids: list[str]) -> tuple[list[str], list[int]]:
    """Conversation id of each first message (by its client id) and escalation ids, in order.

    The browser never learns its conversation id; the newest N conversations are the
    benchmark's (checked), and each is tied to its socket through its first message."""
    from bot.domain.enums import EscalationReason
    from bot.domain.escalations import escalate
    from bot.storage.db import create_engine, create_session_factory
    from bot.storage.models import Conversation as ConversationRow
    from bot.storage.models import Message

    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as db, db.begin():
            newest = set(
                (
                    await db.scalars(
                        select(ConversationRow.id)
                        .order_by(ConversationRow.created_at.desc())
                        .limit(len(client_ids))
                    )
                ).all()
            )
            rows = await db.execute(
                select(Message.client_message_id, Message.conversation_id).where(
                    Message.client_message_id.in_(client_ids)
                )
            )
            by_client = {client: conversation for client, conversation in rows.all()}
            ids = [by_client[c] for c in client_ids]
            if set(ids) != newest or len(newest) != len(client_ids):
                raise RuntimeError("the newest conversations are not the benchmark's")
            escalation_ids = []
            for conversation_id in ids:
                row = await db.get(ConversationRow, conversation_id)
                assert row is not None
                escalation, _ = await escalate(
                    db, row, EscalationReason.customer_request, summary="handoff benchmark"
                )
                escalation_ids.append(escalation.id)
    finally:
        await engine.dispose()
    return ids, escalation_ids


async def sign_in(http: aiohttp.ClientSession) -> str:
    async with http.post(
        f"{BASE_URL}/console/api/login",
        json={"email": AGENT_EMAIL, "password": AGENT_PASSWORD},
        headers={"X-Requested-With": "console"},
        timeout=aiohttp.ClientTimeout(total=SETUP_TIMEOUT),
    ) as response:
        if response.status != 200:
            raise RuntimeError(f"sign-in failed: HTTP {response.status} {await response.text()}")
        me: dict[str, Any] = await response.json()
    return str(me["csrf_token"])


async def claim(staff: Staff, escalation_id: int) -> None:
    async with staff.http.post(
        f"{BASE_URL}/console/api/escalations/{escalation_id}/claim",
        headers={"X-CSRF-Token": staff.csrf_token},
        timeout=aiohttp.ClientTimeout(total=SETUP_TIMEOUT),
    ) as response:
        if response.status != 200:
            raise RuntimeError(f"claim {escalation_id}: HTTP {response.status}")


async def open_console(staff: Staff, conversation_id: str) -> FrameSocket:
    ws = await asyncio.wait_for(
        staff.http.ws_connect(f"ws://{HOST}:{WEB_PORT}/console/ws"), SETUP_TIMEOUT
    )
    sock = FrameSocket(ws)
    await sock.send({"type": "watch", "conversation_id": conversation_id})
    return sock


# --- the run ----------------------------------------------------------------------------------


async def measure(
    args: argparse.Namespace, database_url: str, web: subprocess.Popen[bytes]
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    chats: list[Conversation] = []
    customers = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    staff_http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        cookie_jar=aiohttp.CookieJar(unsafe=True),  # keep cookies from 127.0.0.1
    )
    try:
        healthy_after = await wait_healthy(customers, web)
        say(f"web service healthy after {healthy_after:.1f} s (pid {web.pid}, log {_rel(WEB_LOG)})")
        n = args.conversations
        step = time.monotonic()
        opened = await asyncio.gather(*(open_customer(customers) for _ in range(n)))
        say(
            f"{n} customer WebSockets open (hello + first message) in {time.monotonic() - step:.1f} s"
        )
        ids, escalation_ids = await escalate_all(database_url, [c for _, c in opened])
        chats = [
            Conversation(i, conversation_id, sock, escalation_id=escalation_id)
            for i, ((sock, _), conversation_id, escalation_id) in enumerate(
                zip(opened, ids, escalation_ids, strict=True)
            )
        ]
        staff = Staff(staff_http, BASE_URL, await sign_in(staff_http))
        for chat in chats:  # one agent claiming one after another
            assert chat.escalation_id is not None
            await claim(staff, chat.escalation_id)
        consoles = await asyncio.gather(*(open_console(staff, c.conversation_id) for c in chats))
        for chat, console in zip(chats, consoles, strict=True):
            chat.console = console
        say(
            f"escalated {n} conversations in the database, {AGENT_EMAIL} signed in, claimed all "
            f"{n}, {n} console WebSockets open, each watching one conversation"
        )

        # Warm-up: one unmeasured round per conversation; it also proves every watch is
        # registered (the console's watch frame has no answer).
        step = time.monotonic()
        warm = Samples()
        await asyncio.gather(
            *(one_round(staff, c, f"{c.index}-warm", lambda: 0.0, warm) for c in chats)
        )
        say(
            f"warm-up round (unmeasured) on all {n} conversations: {time.monotonic() - step:.1f} s, "
            f"errors {sum(warm.errors.values())}"
        )
        rng = random.Random(args.seed)

        samples = Samples()
        web_cpu_before = cpu_seconds(web.pid)
        own_cpu_before = time.process_time()
        load_before = loadavg()
        started = time.perf_counter()
        deadline = started + args.max_seconds
        say(
            f"measuring: {n} conversations × {args.messages} rounds, pauses "
            f"{args.pause_min:g}–{args.pause_max:g} s before each hop, at most "
            f"{args.max_seconds:g} s (started {dt.datetime.now().strftime('%H:%M:%S')}) …"
        )
        rngs = [random.Random(rng.random()) for _ in chats]
        tasks = [
            asyncio.create_task(
                run_conversation(
                    staff,
                    chat,
                    args.messages,
                    r,
                    (args.pause_min, args.pause_max),
                    deadline,
                    samples,
                    args.typing,
                )
            )
            for chat, r in zip(chats, rngs, strict=True)
        ]
        try:  # each conversation stops by itself; this is only a backstop
            done, pending = await asyncio.wait(
                tasks, timeout=args.max_seconds + 3 * (args.pause_max + TIMEOUT) + 10
            )
            if pending:
                samples.errors["conversation_over_time_backstop"] += len(pending)
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        elapsed = time.perf_counter() - started
        web_cpu_after = cpu_seconds(web.pid)
        own_cpu = time.process_time() - own_cpu_before
        web_cpu = (
            None
            if web_cpu_before is None or web_cpu_after is None
            else web_cpu_after - web_cpu_before
        )
        results.update(
            elapsed_s=elapsed,
            samples=samples,
            warm_up_errors=dict(warm.errors),
            web_cpu_share_of_one_core=None if web_cpu is None else web_cpu / elapsed,
            load_generator_cpu_share_of_one_core=own_cpu / elapsed,
            load_average_before=load_before,
            load_average_after=loadavg(),
            web_alive_after=web.poll() is None,
        )
    finally:
        await asyncio.gather(
            *(s.close() for c in chats for s in (c.customer, c.console) if s is not None)
        )
        await customers.close()
        await staff_http.close()
    return results


async def measure_interruptibly(
    args: argparse.Namespace, database_url: str, web: subprocess.Popen[bytes]
) -> dict[str, Any]:
    """Ctrl-C / SIGTERM cancel the measurement cleanly (sockets closed), then interrupt."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, task.cancel)
    try:
        return await measure(args, database_url, web)
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- report -----------------------------------------------------------------------------------


def _ms(value: float | int | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _line(label: str, s: dict[str, float | int | None], errors: int) -> str:
    return (
        f"  {label:<38} n={s['count']:<5} p50 {_ms(s['p50_ms'])}, p95 {_ms(s['p95_ms'])}, "
        f"p99 {_ms(s['p99_ms'])}, max {_ms(s['max_ms'])}; errors {errors}"
    )


def _ratio(a: float | int | None, b: float | int | None) -> float | None:
    return None if a is None or not b else float(a) / float(b)


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}×"


def report(results: dict[str, Any], args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    samples: Samples = results["samples"]
    errors = samples.errors
    a_errors = sum(v for k, v in errors.items() if k.startswith("agent"))
    b_errors = sum(v for k, v in errors.items() if k.startswith("customer"))
    base_errors = errors.get("baseline_timeout", 0)
    stats = {
        "agent_to_customer": summary_ms(samples.agent_to_customer),
        "customer_to_agent": summary_ms(samples.customer_to_agent),
        "round_trip": summary_ms(samples.round_trip),
        "baseline_no_op": summary_ms(samples.baseline),
        "agent_post_response": summary_ms(samples.agent_post_response),
    }
    rt, base = stats["round_trip"], stats["baseline_no_op"]
    ratios = {
        "round_trip_over_baseline_p50": _ratio(rt["p50_ms"], base["p50_ms"]),
        "round_trip_over_baseline_p95": _ratio(rt["p95_ms"], base["p95_ms"]),
    }
    total_errors = sum(errors.values())
    p95 = rt["p95_ms"]
    met = p95 is not None and p95 <= TARGET_P95_MS and total_errors == 0
    planned = args.conversations * args.messages
    elapsed = results["elapsed_s"]
    web_cpu = results["web_cpu_share_of_one_core"]
    lines = [
        "",
        f"results: {args.conversations} conversations open, {samples.rounds_done} of {planned} "
        f"planned rounds in {elapsed:.1f} s ({samples.rounds_skipped} skipped: time budget), "
        f"{samples.rounds_done / elapsed:.1f} rounds/s (each: 1 agent reply, 1 customer "
        "message, 1 no-op)",
        _line("(a) agent → customer widget", stats["agent_to_customer"], a_errors),
        _line("(b) customer → agent console", stats["customer_to_agent"], b_errors),
        _line("(c) round trip (a)+(b), same round", rt, a_errors + b_errors),
        _line("baseline: no-op frame → error frame", base, base_errors),
        _line("info: agent POST → HTTP 201", stats["agent_post_response"], 0),
        f"  errors (hop > {TIMEOUT:g} s or failed) by kind: "
        + (", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none")
        + f"; warm-up errors: {sum(results['warm_up_errors'].values())}",
        f"  ratio round trip / baseline: p50 {_x(ratios['round_trip_over_baseline_p50'])}, "
        f"p95 {_x(ratios['round_trip_over_baseline_p95'])}",
        "  CPU during the measurement (% of one core): web service "
        + ("n/a" if web_cpu is None else f"{web_cpu * 100:.0f}%")
        + f", load generator {results['load_generator_cpu_share_of_one_core'] * 100:.0f}%; "
        f"load average {results['load_average_before']} → {results['load_average_after']}; "
        f"web service {'running' if results['web_alive_after'] else 'EXITED'} at the end",
        "",
        f"agent→customer→agent round trip p95 ≤ {TARGET_P95_MS:.0f} ms: "
        f"{'PASS' if met else 'FAIL'} (p95 {_ms(p95)} over {rt['count']} round trips, "
        f"{total_errors} errors; baseline p95 {_ms(base['p95_ms'])})",
    ]
    summary = {
        "stats": stats,
        "ratios": ratios,
        "errors_by_kind": dict(errors),
        "rounds_done": samples.rounds_done,
        "rounds_planned": planned,
        "rounds_skipped": samples.rounds_skipped,
        "target": {
            "round_trip_p95_ms": p95,
            "target_ms": TARGET_P95_MS,
            "met": met,
            "rule": "p95 <= target and zero errors",
        },
        "raw_ms": {
            "agent_to_customer": [round(v * 1000, 3) for v in samples.agent_to_customer],
            "customer_to_agent": [round(v * 1000, 3) for v in samples.customer_to_agent],
            "round_trip": [round(v * 1000, 3) for v in samples.round_trip],
            "baseline_no_op": [round(v * 1000, 3) for v in samples.baseline],
        },
    }
    return lines, summary


# --- main -------------------------------------------------------------------------------------


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    args = parse_args(raw)
    command = f"{python()} -m bench.handoff_latency {shlex.join(raw)}".rstrip()
    header = [
        f"command: {command}  (cwd {ROOT})",
        f"date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}",
        f"machine: {machine()}",
        "load generator: this process (one asyncio loop, aiohttp) on the same machine, sharing "
        "its cores with the web service; traffic to 127.0.0.1 only",
        f"web service: `python -m bot serve` alone on :{WEB_PORT}, "
        + (f"PostgreSQL {args.postgres} " if args.postgres else f"SQLite {_rel(DATABASE)} ")
        + f"(fresh: migrate + staff demo), RASA_URL={RASA_URL} (nothing listens; unused while "
        "conversations are with an agent), RATE_LIMIT_MESSAGES=100000",
        f"model: {args.conversations} conversations open and claimed by one agent, each with "
        f"its own customer WebSocket and console WebSocket; {args.messages} rounds each, random "
        f"pause {args.pause_min:g}–{args.pause_max:g} s before every hop; hop timeout {TIMEOUT:g} s",
    ]
    for line in header:
        say(line)
    if port_in_use(WEB_PORT):
        say(f"port {WEB_PORT} is already in use; stop whatever listens there first")
        return 1
    try:
        database_url = fresh_database(args.postgres)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        say(f"could not create the database: {exc}")
        return 1
    signal.signal(signal.SIGTERM, _terminate)
    web: subprocess.Popen[bytes] | None = None
    outcome = "not started"
    failure: str | None = None
    try:
        # A signal between starting the child and holding its handle is noted and acted on
        # after (blocking signals instead would leave them blocked in the child).
        noted: list[int] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda received, _frame: noted.append(received))
        try:
            web = start_web(database_url)
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, _terminate)
        if noted:
            raise KeyboardInterrupt
        results = asyncio.run(measure_interruptibly(args, database_url, web))
    except (RuntimeError, SocketClosed, aiohttp.ClientError, asyncio.TimeoutError) as exc:
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the (bounded) stop is not interrupted
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if web is not None:
            outcome = stop_web(web)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        say(f"web service {outcome}")
    if failure is not None:
        say(f"benchmark failed during setup or measurement: {failure} (web log: {_rel(WEB_LOG)})")
        return 1
    lines, summary = report(results, args)
    for line in lines:
        say(line)
    RESULTS.write_text(
        json.dumps(
            {
                "command": command,
                "header": header,
                "report": lines,
                "arguments": vars(args),
                "elapsed_s": results["elapsed_s"],
                "warm_up_errors": results["warm_up_errors"],
                "web_cpu_share_of_one_core": results["web_cpu_share_of_one_core"],
                "load_generator_cpu_share_of_one_core": results[
                    "load_generator_cpu_share_of_one_core"
                ],
                "load_average": [results["load_average_before"], results["load_average_after"]],
                **summary,
            },
            indent=1,
        )
        + "\n"
    )
    say(f"\nfull results: {_rel(RESULTS)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; the web service is stopped", file=sys.stderr)
        sys.exit(130)
