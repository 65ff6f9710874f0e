"""Load phases (simulated customers for a fixed time), their statistics, and the
process measurements taken during them (RSS, CPU time)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.chat_load.clients import TURN_TIMEOUT, Chat, Turn, script
from bench.stats import summary_ms

MAX_CONVERSATIONS_PER_CUSTOMER = 100_000  # the phase's time ends the loop long before this
DRAIN_SLACK = 15.0  # seconds after the last in-flight turn's timeout before giving up on it
RSS_INTERVAL = 10.0  # seconds between RSS samples


@dataclass(frozen=True)
class Phase:
    load_model: str  # "realistic" or "saturation"
    path: str  # "full stack" or "bare Rasa"
    conversations: int
    seconds: float
    think_min: float
    think_max: float


@dataclass
class PhaseRun:
    phase: Phase
    started: float = 0.0  # time.monotonic()
    deadline: float = 0.0
    turns: list[Turn] = field(default_factory=list)
    session_errors: Counter[str] = field(default_factory=Counter)
    conversations_started: int = 0
    conversations_finished: int = 0
    late_frames: int = 0
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    abandoned_turns: int = 0  # customers still waiting for a reply when the drain gave up
    loadavg: str = ""


async def _think(rng: random.Random, phase: Phase, deadline: float) -> bool:
    """Wait the customer's think time; False when the phase ends first."""
    if phase.think_max <= 0:
        return time.monotonic() < deadline
    pause = rng.uniform(phase.think_min, phase.think_max)
    remaining = deadline - time.monotonic()
    if pause >= remaining:
        await asyncio.sleep(max(0.0, remaining))
        return False
    await asyncio.sleep(pause)
    return True


async def _customer(
    number: int,
    run: PhaseRun,
    new_chat: Callable[[], Chat],
    pairs: Sequence[tuple[str, str]],
    seed: int,
) -> None:
    """One simulated customer: conversation after conversation until the phase ends."""
    rng = random.Random(seed * 100_003 + number)
    phase, deadline = run.phase, run.deadline
    for _ in range(MAX_CONVERSATIONS_PER_CUSTOMER):
        if time.monotonic() >= deadline:
            return
        order_number, email = rng.choice(pairs)
        chat = new_chat()
        run.conversations_started += 1
        try:
            problem = await chat.open()
            if problem is not None:
                run.session_errors[problem] += 1
                await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                continue
            for step, text, expected in script(order_number, email):
                if not await _think(rng, phase, deadline):
                    return
                turn = await chat.say(step, text, expected)
                run.turns.append(turn)
                if turn.error is not None:
                    break  # the conversation's state is unknown: start a new one
            else:
                run.conversations_finished += 1
        finally:
            run.late_frames += chat.late_frames
            await chat.close()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


async def settle(pids: dict[str, int], max_seconds: float = 90.0) -> float:
    """Wait until the stack's processes are idle (together under 15 % of one core for a
    second), so one phase's backlog doesn't run into the next; returns the seconds waited."""
    started = time.monotonic()
    for _ in range(int(max_seconds)):
        before = [cpu_seconds(pid) or 0.0 for pid in pids.values()]
        await asyncio.sleep(1.0)
        after = [cpu_seconds(pid) or 0.0 for pid in pids.values()]
        if sum(after) - sum(before) < 0.15:
            break
    return time.monotonic() - started


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


async def run_phase(
    phase: Phase,
    new_chat: Callable[[], Chat],
    pairs: Sequence[tuple[str, str]],
    pids: dict[str, int],
    seed: int,
) -> PhaseRun:
    run = PhaseRun(phase)
    run.loadavg = loadavg()
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    own_before = _own_cpu()
    run.started = time.monotonic()
    run.deadline = run.started + phase.seconds
    tasks = [
        asyncio.create_task(_customer(n, run, new_chat, pairs, seed))
        for n in range(phase.conversations)
    ]
    # Every customer stops starting turns at the deadline; one in flight ends within the
    # turn timeout. Anything still running after that (a bug) is cancelled.
    done, pending = await asyncio.wait(tasks, timeout=phase.seconds + TURN_TIMEOUT + DRAIN_SLACK)
    run.abandoned_turns = len(pending)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=10)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            run.session_errors[f"crash:{type(task.exception()).__name__}"] += 1
    run.wall_seconds = time.monotonic() - run.started
    for name, pid in pids.items():
        before, after = cpu_before[name], cpu_seconds(pid)
        if before is not None and after is not None:
            run.cpu_seconds[name] = after - before
    run.cpu_seconds["load generator"] = _own_cpu() - own_before
    return run


@dataclass
class RssSampler:
    """VmRSS of one process every RSS_INTERVAL seconds while running."""

    pid: int
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MB)
    _task: asyncio.Task[None] | None = None
    _t0: float = 0.0

    def _sample(self) -> None:
        value = rss_mb(self.pid)
        if value is not None:
            self.samples.append((time.monotonic() - self._t0, value))

    async def _loop(self) -> None:
        for _ in range(100_000):  # cancelled by stop(); bounded anyway
            self._sample()
            await asyncio.sleep(RSS_INTERVAL)

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample()


def slope_per_minute(samples: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of MB over time, in MB per minute."""
    if len(samples) < 2:
        return None
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    return cov / var * 60


def summarise(run: PhaseRun) -> dict[str, Any]:
    phase = run.phase
    ok = [t for t in run.turns if t.error is None]
    completed_in_window = [t for t in ok if t.ended <= run.deadline]
    sent_in_window = [t for t in run.turns if t.started <= run.deadline]
    errors = Counter(t.error for t in run.turns if t.error is not None)
    errors.update(run.session_errors)
    by_step: dict[str, dict[str, float | int | None]] = {}
    for step in dict.fromkeys(t.step for t in run.turns):
        by_step[step] = summary_ms(
            [t.latency for t in ok if t.step == step and t.latency is not None]
        )
    cpu = {name: seconds / run.wall_seconds for name, seconds in run.cpu_seconds.items()}
    return {
        "load_model": phase.load_model,
        "path": phase.path,
        "conversations": phase.conversations,
        "seconds": phase.seconds,
        "think_seconds": [phase.think_min, phase.think_max],
        "load_average_at_start": run.loadavg,
        "turns_sent": len(sent_in_window),
        "offered_turns_per_s": len(sent_in_window) / phase.seconds,
        "completed_turns": len(completed_in_window),
        "completed_turns_per_s": len(completed_in_window) / phase.seconds,
        "completed_turns_incl_drain": len(ok),
        "latency": summary_ms([t.latency for t in ok if t.latency is not None]),
        "latency_by_step": by_step,
        "errors": sum(errors.values()),
        "errors_by_kind": dict(errors),
        "unexpected_replies": sum(t.unexpected for t in ok),
        "late_bot_frames": run.late_frames,
        "conversations_started": run.conversations_started,
        "conversations_finished": run.conversations_finished,
        "abandoned_customers": run.abandoned_turns,
        "cpu_share_of_one_core": cpu,
        "wall_seconds": run.wall_seconds,
        "turn_records": [
            [
                t.step,
                round(t.started - run.started, 4),
                None if t.latency is None else round(t.latency * 1000, 2),
                t.error,
            ]
            for t in run.turns
        ],
    }
