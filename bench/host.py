"""What the benchmarks share about the machine they run on and the processes they start."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv-app" / "bin" / "python"


def say(line: str = "") -> None:
    print(line, flush=True)


def python() -> str:
    """The app environment's interpreter for child processes (this one when it is absent)."""
    return str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    memory = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    return (
        f"{os.cpu_count()} cores (os.cpu_count), {memory} RAM (MemTotal), {platform.machine()}, "
        f"Linux {platform.release()}, Python {platform.python_version()}, "
        f"load average at start {loadavg()}"
    )


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
