"""Starts Rasa, the action server and the web service; waits until all are healthy.

Used by `make run`, the end-to-end tests and the benchmarks. Ctrl-C (or SIGTERM) stops
all three. Rasa and the action server listen on loopback only.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot import proxy
from bot.config import PROJECT_ROOT, Settings

RASA_VENV = PROJECT_ROOT / ".venv-rasa"
APP_VENV = PROJECT_ROOT / ".venv-app"
MODEL = PROJECT_ROOT / "models" / "current.tar.gz"
# `rasa run` with the behaviour-preserving speed-ups of rasa_ext/speedups.py installed first.
RASA_RUN = [str(RASA_VENV / "bin" / "python"), "-m", "rasa_ext", "run"]
# rasa_sdk's action server, refusing calls without ACTION_SERVER_TOKEN (actions/server.py).
ACTION_SERVER = ["-m", "actions.server"]


def free_port(low: int = 20000) -> int:
    """A loopback TCP port free right now, below the kernel's ephemeral range.

    Port 0 would give one from inside that range, where any outgoing connection (a load
    generator opens thousands) may take it as its own source port before our server binds
    it: seen twice here as a replica failing to start."""
    candidates = range(low, _ephemeral_low())
    for port in random.sample(candidates, min(200, len(candidates))):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port tried between {low} and {candidates.stop - 1}")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


@dataclass
class StackPorts:
    web: int = 8000
    rasa: int = 5005
    actions: int = 5055


@dataclass
class Stack:
    ports: StackPorts
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # How each process was started and how to tell it is healthy (restart() reuses them).
    commands: dict[str, list[str]] = field(default_factory=dict)
    health: dict[str, str] = field(default_factory=dict)
    environments: dict[str, dict[str, str]] = field(default_factory=dict)
    proxy_port: int | None = None  # the production profile's nginx in front of the web tier

    def spawn(self, name: str) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            self.commands[name],
            cwd=PROJECT_ROOT,
            env=self.environments[name],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_healthy(self, names: list[str], timeout: float) -> None:
        """Until every named process answers its health check; SystemExit when one exits."""
        deadline = time.monotonic() + timeout
        pending = [n for n in names if self.health.get(n)]
        while pending:
            for name in list(pending):
                if self.processes[name].poll() is not None:
                    raise SystemExit(f"{name} exited early; see {self.log_dir / (name + '.log')}")
                if _ready(self.health[name]):
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                raise SystemExit(
                    f"Timed out waiting for {', '.join(pending)}; logs in {self.log_dir}"
                )
            time.sleep(0.25 if pending else 0)

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash would (the fault test)."""
        process = self.processes[name]
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)

    def restart(self, name: str, timeout: float = 180) -> float:
        """Start a stopped or crashed process again; returns the seconds until healthy."""
        started = time.monotonic()
        if self.processes[name].poll() is None:
            self.kill(name)
        self.spawn(name)
        self.wait_healthy([name], timeout)
        return time.monotonic() - started

    def alive(self) -> dict[str, bool]:
        return {name: p.poll() is None for name, p in self.processes.items()}

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.web}"

    @property
    def proxy_url(self) -> str:
        """nginx in front of the web replicas (production profile), else the web server."""
        return f"http://127.0.0.1:{self.proxy_port}" if self.proxy_port else self.web_url

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.rasa}"

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()


def _environment(ports: StackPorts, extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra or {})
    _set_secrets(env)
    env["ACTION_SERVER_URL"] = (
        env.get("ACTION_SERVER_URL") or f"http://127.0.0.1:{ports.actions}/webhook"
    )
    env["RASA_URL"] = f"http://127.0.0.1:{ports.rasa}"
    env["WEB_PORT"] = str(ports.web)
    env["SANIC_HOST"] = "127.0.0.1"
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return env


def _set_secrets(env: dict[str, str]) -> None:
    """The shared secrets (issue #16), from the environment or Settings' development values.
    They reach the processes only through their environment, never a command line (`ps`):
    Rasa's API token (`python -m rasa_ext run` adds `--auth-token` inside the process), its
    REST channel's secret and the action server's token (credentials*.yml, endpoints*.yml)."""
    settings = Settings.from_env()
    env.setdefault("RASA_TOKEN", settings.rasa_token)
    env.setdefault("RASA_CHANNEL_SECRET", settings.rasa_channel_secret)
    env.setdefault("ACTION_SERVER_TOKEN", settings.action_server_token)


def _commands(ports: StackPorts, model: Path, env: dict[str, str]) -> dict[str, list[str]]:
    return {
        "actions": [
            str(APP_VENV / "bin" / "python"),
            *ACTION_SERVER,
            "--actions",
            "actions",
            "--port",
            str(ports.actions),
            "--quiet",
        ],
        "rasa": [
            *RASA_RUN,
            "--model",
            str(model),
            "--interface",
            "127.0.0.1",
            "--port",
            str(ports.rasa),
            "--enable-api",
            "--endpoints",
            "endpoints.yml",
            "--credentials",
            "credentials.yml",
        ],
        "web": [str(APP_VENV / "bin" / "python"), "-m", "bot", "serve"],
    }


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(
    ports: StackPorts | None = None,
    *,
    model: Path = MODEL,
    env: dict[str, str] | None = None,
    log_dir: Path | None = None,
    timeout: float = 180,
) -> Stack:
    ports = ports or StackPorts()
    if not model.exists():
        raise SystemExit(f"No trained model at {model}; run `make train` first.")
    log_dir = log_dir or PROJECT_ROOT / "var" / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    environment = _environment(ports, env)
    stack = Stack(ports, log_dir)
    for name, command in _commands(ports, model, environment).items():
        log = (log_dir / f"{name}.log").open("ab")
        stack.processes[name] = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    checks = {
        "actions": f"http://127.0.0.1:{ports.actions}/health",
        "rasa": f"{stack.rasa_url}/status?token={environment['RASA_TOKEN']}",
        "web": f"{stack.web_url}/healthz",
    }
    deadline = time.monotonic() + timeout
    pending = dict(checks)
    while pending:
        for name, url in list(pending.items()):
            if stack.processes[name].poll() is not None:
                stack.stop()
                raise SystemExit(f"{name} exited early; see {log_dir / (name + '.log')}")
            if _ready(url):
                del pending[name]
        if time.monotonic() > deadline:
            stack.stop()
            raise SystemExit(f"Timed out waiting for {', '.join(pending)}; logs in {log_dir}")
        time.sleep(0.5)
    return stack


@contextmanager
def running(ports: StackPorts | None = None, **kwargs: object) -> Iterator[Stack]:
    stack = start(ports, **kwargs)  # type: ignore[arg-type]
    try:
        yield stack
    finally:
        stack.stop()


def run_forever() -> int:
    stack = start()
    print(
        "\nThe shop assistant is running:\n"
        f"  demo shop with the chat widget: {stack.web_url}/demo/shop/\n"
        f"    (sign in as a demo customer there: C1001 Jane, C1002 Tom, C1003 Priya)\n"
        f"  stand-alone chat page:          {stack.web_url}/\n"
        f"  health:                         {stack.web_url}/healthz\n"
        f"  staff console:                  {stack.web_url}/console/\n"
        "    agents agent@example.com, agent2@example.com; admin admin@example.com;\n"
        "    password demo-password-123 (created by `python -m bot staff demo`)\n"
        f"  CX dashboard:                   {stack.web_url}/dashboard/\n"
        "    CX manager cx@example.com (password demo-password-123)\n"
        "Anonymous? Verify with order A10001 and jane.doe@example.com.\n"
        f"Logs: {stack.log_dir}. Press Ctrl-C to stop.",
        flush=True,
    )
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        while not stopping.wait(1):
            dead = [n for n, p in stack.processes.items() if p.poll() is not None]
            # Ctrl-C in a terminal reaches the children too; they may exit a moment before
            # our own handler runs, which is a normal stop, not a crash.
            if dead and not stopping.wait(2):
                print(f"{', '.join(dead)} stopped unexpectedly; see the logs.", file=sys.stderr)
                return 1
        print("\nStopping…", flush=True)
        return 0
    finally:
        stack.stop()


# --- production profile: PostgreSQL, Redis, RabbitMQ; 2 Rasa, 2 action servers, 2 web ---


@dataclass
class ProdPorts:
    web: tuple[int, ...] = (8000, 8001)
    rasa: tuple[int, ...] = (5005, 5006)
    actions: tuple[int, ...] = (5055, 5056)
    # nginx (bot/proxy.py, deploy/nginx.conf): Rasa's single action endpoint, failing over
    # between the action server replicas ...
    actions_balancer: int = 5050
    # ... and the customers' and staff's entry in front of the web replicas (None: a free
    # port, for the fault test and benchmarks; `make run-prod` uses 8080).
    proxy: int | None = None


# Local defaults of the production profile; every one can be overridden by the environment.
PROD_DEFAULTS: dict[str, str] = {
    "DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/shopbot",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "RASA_TRACKER_DB_HOST": "127.0.0.1",
    "RASA_TRACKER_DB_PORT": "5432",
    "RASA_TRACKER_DB_NAME": "shopbot_tracker",
    "RASA_TRACKER_DB_USER": "postgres",
    "RASA_TRACKER_DB_PASSWORD": "",
    "RASA_TRACKER_LOGIN_DB": "postgres",
    "RASA_LOCK_REDIS_HOST": "127.0.0.1",
    "RASA_LOCK_REDIS_PORT": "6379",
    "RASA_LOCK_REDIS_DB": "1",
    "RASA_LOCK_REDIS_PASSWORD": "",
    "RASA_LOCK_KEY_PREFIX": "shopbot",
    "RABBITMQ_HOST": "127.0.0.1",
    "RABBITMQ_PORT": "5672",
    "RABBITMQ_USER": "guest",
    "RABBITMQ_PASSWORD": "guest",
    "RABBITMQ_QUEUE": "shopbot_rasa_events",
    "RABBITMQ_EXCHANGE": "shopbot-rasa-exchange",
    "LOG_FORMAT": "json",
    # Customer turns each web replica runs at once on one Rasa worker (the web service's
    # default, 4, is sized for the embedded Rasa, whose turn is mostly its own CPU). A
    # production turn spends most of its time waiting for PostgreSQL, Redis, RabbitMQ and
    # the action servers through nginx, so at 4 the workers sat partly idle while turns
    # queued in the web service (docs/benchmarks.md, "Production profile at saturation,
    # 2026-12-07 night").
    "RASA_MAX_IN_FLIGHT": "16",
}
PREFLIGHT_SENDER = "preflight-"  # the analytics consumer ignores these conversations


def prod_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The production profile's settings: defaults < process environment < `extra`."""
    env = {**PROD_DEFAULTS, **{k: v for k, v in os.environ.items() if k in PROD_DEFAULTS}}
    env.update(extra or {})
    return env


def _tracker_dsn(env: dict[str, str], database: str) -> str:
    password = f":{env['RASA_TRACKER_DB_PASSWORD']}" if env["RASA_TRACKER_DB_PASSWORD"] else ""
    return (
        f"postgresql://{env['RASA_TRACKER_DB_USER']}{password}@{env['RASA_TRACKER_DB_HOST']}:"
        f"{env['RASA_TRACKER_DB_PORT']}/{database}"
    )


async def _check_postgres(url: str, create: str | None = None) -> None:
    """Connect (asyncpg); with `create`, create that database when it is missing."""
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(url, timeout=5)
    try:
        if create and not await connection.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", create
        ):
            await connection.execute(f'CREATE DATABASE "{create}"')
    finally:
        await connection.close()


async def _check_redis(host: str, port: str, db: str, password: str) -> None:
    from redis.asyncio import Redis

    client = Redis(
        host=host,
        port=int(port),
        db=int(db or 0),
        password=password or None,
        socket_connect_timeout=3,
        socket_timeout=3,
    )
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _check_redis_url(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _check_rabbitmq(env: dict[str, str]) -> None:
    import aio_pika

    connection = await aio_pika.connect(
        host=env["RABBITMQ_HOST"],
        port=int(env["RABBITMQ_PORT"]),
        login=env["RABBITMQ_USER"],
        password=env["RABBITMQ_PASSWORD"],
        timeout=5,
    )
    await connection.close()


def _product_database(url: str) -> tuple[str, str]:
    """(asyncpg URL of the server's `postgres` database, product database name)."""
    plain = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    server, _, name = plain.rpartition("/")
    return f"{server}/postgres", name.split("?", 1)[0]


async def _preflight(env: dict[str, str]) -> list[str]:
    """Every backing service the profile is configured with, reachable; else what is not."""
    server, product_db = _product_database(env["DATABASE_URL"])
    checks = {
        f"product database (DATABASE_URL, PostgreSQL {server.rsplit('@', 1)[-1]})": _check_postgres(
            server, create=product_db
        ),
        "Rasa tracker store (RASA_TRACKER_DB_*, PostgreSQL)": _check_postgres(
            _tracker_dsn(env, env["RASA_TRACKER_LOGIN_DB"]), create=env["RASA_TRACKER_DB_NAME"]
        ),
        "Rasa lock store (RASA_LOCK_REDIS_*, Redis)": _check_redis(
            env["RASA_LOCK_REDIS_HOST"],
            env["RASA_LOCK_REDIS_PORT"],
            env["RASA_LOCK_REDIS_DB"],
            env["RASA_LOCK_REDIS_PASSWORD"],
        ),
        "web replicas' pub/sub (REDIS_URL, Redis)": _check_redis_url(env["REDIS_URL"]),
        "Rasa event broker (RABBITMQ_*, RabbitMQ)": _check_rabbitmq(env),
    }
    names = list(checks)
    outcomes = await asyncio.gather(
        *(asyncio.wait_for(c, 10) for c in checks.values()), return_exceptions=True
    )
    return [
        f"{name}: {type(outcome).__name__}: {outcome}"
        for name, outcome in zip(names, outcomes, strict=True)
        if isinstance(outcome, BaseException)
    ]


def preflight(env: dict[str, str]) -> None:
    """Refuse to start when a configured backing service is unreachable (no silent fallback:
    Rasa itself would start with a SQL tracker store it cannot reach and keep the
    conversations in memory)."""
    problems = asyncio.run(_preflight(env))
    if problems:
        raise SystemExit(
            "Refusing to start the production profile; unreachable:\n  - "
            + "\n  - ".join(problems)
            + "\nStart these services or fix the environment variables (docs/deploy.md)."
        )


async def _tracker_rows(env: dict[str, str], sender: str, delete: bool) -> int:
    import asyncpg

    connection = await asyncpg.connect(_tracker_dsn(env, env["RASA_TRACKER_DB_NAME"]), timeout=5)
    try:
        count = int(
            await connection.fetchval("SELECT count(*) FROM events WHERE sender_id = $1", sender)
        )
        if delete:
            await connection.execute("DELETE FROM events WHERE sender_id = $1", sender)
        return count
    finally:
        await connection.close()


def verify_tracker_store(rasa_url: str, token: str, env: dict[str, str]) -> None:
    """Write one event through a Rasa worker's API and find it in PostgreSQL: proves that the
    worker uses the SQL tracker store (not a memory fallback), the Redis lock and the broker."""
    import json
    import uuid

    sender = f"{PREFLIGHT_SENDER}{uuid.uuid4().hex}"
    request = urllib.request.Request(
        f"{rasa_url}/conversations/{sender}/tracker/events?token={token}&include_events=NONE",
        data=json.dumps([{"event": "action", "name": "action_listen"}]).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            status = response.status
    except (urllib.error.URLError, OSError) as error:
        raise SystemExit(f"Rasa at {rasa_url} failed the tracker store check: {error}") from error
    rows = asyncio.run(_tracker_rows(env, sender, delete=True))
    if status != 200 or rows == 0:
        raise SystemExit(
            f"Rasa at {rasa_url} does not write to the SQL tracker store "
            f"(HTTP {status}, {rows} rows in {env['RASA_TRACKER_DB_NAME']}.events): it may "
            "have fallen back to memory; check endpoints.prod.yml and the Rasa log."
        )


def _prod_commands(
    ports: ProdPorts, env: dict[str, str], nginx: list[str] | None = None
) -> dict[str, tuple[list[str], str, dict[str, str]]]:
    """name → (command, health URL or "", extra environment); `nginx`: its command line
    (`_nginx_command`; a placeholder when only the commands are inspected)."""
    python = str(APP_VENV / "bin" / "python")
    services: dict[str, tuple[list[str], str, dict[str, str]]] = {}
    for i, port in enumerate(ports.actions, 1):
        services[f"actions-{i}"] = (
            [python, *ACTION_SERVER, "--actions", "actions", "--port", str(port), "--quiet"],
            f"http://127.0.0.1:{port}/health",
            {},
        )
    # Healthy once it passes an action server's /health on (the web side is checked after
    # the replicas are up: start_prod).
    services["nginx"] = (
        nginx or ["nginx"],
        f"http://127.0.0.1:{ports.actions_balancer}/health",
        {},
    )
    for i, port in enumerate(ports.rasa, 1):
        services[f"rasa-{i}"] = (
            [
                *RASA_RUN,
                "--model",
                str(MODEL),
                "--interface",
                "127.0.0.1",
                "--port",
                str(port),
                "--enable-api",
                "--endpoints",
                "endpoints.prod.yml",
                "--credentials",
                "credentials.prod.yml",
            ],
            f"http://127.0.0.1:{port}/status?token={env['RASA_TOKEN']}",
            {},
        )
    for i, port in enumerate(ports.web, 1):
        services[f"web-{i}"] = (
            [python, "-m", "bot", "serve"],
            f"http://127.0.0.1:{port}/healthz",
            {"WEB_PORT": str(port), "REPLICA_NAME": f"web-{i}"},
        )
    services["analytics"] = ([python, "-m", "bot", "analytics-consumer"], "", {})
    return services


def start_prod(
    ports: ProdPorts | None = None,
    *,
    env: dict[str, str] | None = None,
    log_dir: Path | None = None,
    timeout: float = 300,
) -> Stack:
    """Preflight, then every process of the production profile; returns once all are healthy
    and each Rasa worker has been seen writing to the SQL tracker store."""
    ports = ports or ProdPorts()
    if ports.proxy is None:
        ports = replace(ports, proxy=free_port())
    if not MODEL.exists():
        raise SystemExit(f"No trained model at {MODEL}; run `make train` first.")
    nginx_binary = proxy.require_nginx()  # says how to install it when missing
    settings = prod_environment(env)
    preflight(settings)
    log_dir = log_dir or PROJECT_ROOT / "var" / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    base = {**os.environ, **settings}
    # The replicas see every client through nginx on loopback: its X-Forwarded-For names
    # the client (per-address limits, issue #22).
    base.setdefault("TRUSTED_PROXIES", "127.0.0.1")
    _set_secrets(base)
    base.update(
        ACTION_SERVER_URL=f"http://127.0.0.1:{ports.actions_balancer}/webhook",
        RASA_URL=",".join(f"http://127.0.0.1:{p}" for p in ports.rasa),
        SANIC_HOST="127.0.0.1",
        PYTHONPATH=str(PROJECT_ROOT),
    )
    stack = Stack(StackPorts(ports.web[0], ports.rasa[0], ports.actions_balancer), log_dir)
    stack.proxy_port = ports.proxy
    config = proxy.write_config(
        log_dir.parent / f"nginx-{ports.proxy}",
        log_dir / "nginx-error.log",
        web=[f"127.0.0.1:{p}" for p in ports.web],
        actions=[f"127.0.0.1:{p}" for p in ports.actions],
        web_listen=f"127.0.0.1:{ports.proxy}",
        actions_listen=f"127.0.0.1:{ports.actions_balancer}",
    )
    nginx = proxy.command(nginx_binary, config)
    for name, (command, health, extra) in _prod_commands(ports, base, nginx).items():
        stack.commands[name], stack.health[name] = command, health
        stack.environments[name] = {**base, **extra}
    try:
        for name in stack.commands:
            stack.spawn(name)
        stack.wait_healthy(list(stack.commands), timeout)
        deadline = time.monotonic() + 30
        while not _ready(f"{stack.proxy_url}/healthz"):  # nginx → the web replicas
            if time.monotonic() > deadline:
                raise SystemExit(f"nginx does not reach the web replicas; logs in {log_dir}")
            time.sleep(0.25)
        for port in ports.rasa:
            verify_tracker_store(f"http://127.0.0.1:{port}", base["RASA_TOKEN"], settings)
        time.sleep(1)
        dead = [n for n, ok in stack.alive().items() if not ok]
        if dead:
            raise SystemExit(f"{', '.join(dead)} stopped after starting; logs in {log_dir}")
    except BaseException:
        stack.stop()
        raise
    return stack


def prepare_database(database_url: str, demo: bool = True) -> None:
    """Migrate the product database; load the demo shop and demo logins (development)."""
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(PROJECT_ROOT)}
    commands = [["migrate"]]
    if demo and env.get("APP_ENV") != "production":
        commands += [["demo"], ["staff", "demo"]]
    for command in commands:  # the demo load takes ~40 s idle, 6-10 min at load 14
        subprocess.run(
            [str(APP_VENV / "bin" / "python"), "-m", "bot", *command],
            cwd=PROJECT_ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=1800,
        )


def run_prod_forever() -> int:
    """`python -m bot run --prod`: the production profile on this machine, restarting any
    process that crashes (as a process supervisor would)."""
    settings = prod_environment()
    preflight(settings)  # also creates the databases when missing
    prepare_database(settings["DATABASE_URL"])
    stack = start_prod(ProdPorts(proxy=8080))
    web = ", ".join(f"http://127.0.0.1:{p}" for p in ProdPorts().web)
    print(
        "\nThe production profile is running (PostgreSQL, Redis, RabbitMQ):\n"
        f"  customers and staff: {stack.proxy_url}/ (nginx in front of the web replicas; "
        "deploy/nginx.conf)\n"
        f"  web replicas: {web}\n"
        f"  readiness:    {stack.web_url}/readyz   metrics: {stack.web_url}/metrics "
        "(Authorization: Bearer $METRICS_TOKEN, or the OPS_PORT; docs/security.md)\n"
        f"  processes:    {', '.join(stack.processes)}\n"
        f"Logs: {stack.log_dir}. Press Ctrl-C to stop.",
        flush=True,
    )
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        while not stopping.wait(1):
            for name, alive in stack.alive().items():
                if not alive and not stopping.wait(2):
                    print(f"{name} stopped unexpectedly; restarting it.", file=sys.stderr)
                    try:
                        stack.restart(name)
                    except SystemExit as error:
                        print(f"{name} did not come back: {error}", file=sys.stderr)
                        return 1
        print("\nStopping…", flush=True)
        return 0
    finally:
        stack.stop()
