"""Starts Rasa, the action server and the web service; waits until all are healthy.

Used by `make run`, the end-to-end tests and the benchmarks. Ctrl-C (or SIGTERM) stops
all three. Rasa and the action server listen on loopback only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import PROJECT_ROOT, Settings

RASA_VENV = PROJECT_ROOT / ".venv-rasa"
APP_VENV = PROJECT_ROOT / ".venv-app"
MODEL = PROJECT_ROOT / "models" / "current.tar.gz"


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

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.web}"

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
    env.setdefault("RASA_TOKEN", Settings.from_env().rasa_token)
    env["ACTION_SERVER_URL"] = (
        env.get("ACTION_SERVER_URL") or f"http://127.0.0.1:{ports.actions}/webhook"
    )
    env["RASA_URL"] = f"http://127.0.0.1:{ports.rasa}"
    env["WEB_PORT"] = str(ports.web)
    env["SANIC_HOST"] = "127.0.0.1"
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return env


def _commands(ports: StackPorts, model: Path, env: dict[str, str]) -> dict[str, list[str]]:
    return {
        "actions": [str(APP_VENV / "bin" / "python"), "-m", "rasa_sdk", "--actions", "actions",
                    "--port", str(ports.actions), "--quiet"],
        "rasa": [str(RASA_VENV / "bin" / "rasa"), "run", "--model", str(model),
                 "--interface", "127.0.0.1", "--port", str(ports.rasa), "--enable-api",
                 "--auth-token", env["RASA_TOKEN"], "--endpoints", "endpoints.yml",
                 "--credentials", "credentials.yml"],
        "web": [str(APP_VENV / "bin" / "python"), "-m", "bot", "serve"],
    }  # fmt: skip


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
        "  CX dashboard: not built yet (issue #6)\n"
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
