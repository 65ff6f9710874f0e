"""The console queue with a closed-loop follow-up (a detractor from the call center, no
chat): shown with its summary and contact, claimed and resolved from the queue.

Only the web service runs (no Rasa: a follow-up never talks to the bot)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import PROJECT_ROOT
from bot.launcher import free_port

pytestmark = pytest.mark.browser

CSV = (
    "channel,customer_external_id,customer_email,occurred_at,kind,score,text,external_id\n"
    "call_center,C1002,,2026-11-20T10:00:00Z,csat,1,Nobody called me back about the parcel,call-1\n"
)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("follow_up")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'db.sqlite'}",
        "WEB_PORT": str(port),
        "RASA_URL": "http://127.0.0.1:9",
    }
    (workdir / "feedback.csv").write_text(CSV)
    for command in (
        ["migrate"],
        ["demo"],
        ["staff", "demo"],
        ["import-feedback", str(workdir / "feedback.csv")],
    ):
        subprocess.run(
            [sys.executable, "-m", "bot", *command],
            env=env,
            cwd=PROJECT_ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    with (workdir / "web.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, process, workdir / "web.log")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def _wait(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(150):
        if process.poll() is not None:
            pytest.fail(f"web service exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail("web service did not start")


def test_follow_up_is_shown_claimed_and_resolved_in_the_queue(web: str, browser: Any) -> None:
    agent = browser.new_context().new_page()
    agent.goto(f"{web}/console/login")
    agent.get_by_label("Email").fill("agent@example.com")
    agent.get_by_label("Password").fill("demo-password-123")
    agent.get_by_role("button", name="Sign in").click()
    row = agent.locator("[data-escalation-id]", has_text="Nobody called me back")
    row.wait_for(timeout=15_000)
    assert "Follow-up by phone or email: tom.becker@example.com" in row.inner_text()
    assert "call center: csat 1" in row.inner_text()
    assert "due" in row.inner_text()
    assert row.locator("a").count() == 0  # no conversation page to open

    row.get_by_role("button", name="Claim").click()
    resolve = row.get_by_role("button", name="Resolve")
    resolve.wait_for(timeout=15_000)
    assert agent.url.rstrip("/").endswith("/console")  # stayed on the queue
    resolve.click()
    agent.get_by_text("Resolved. The customer gets a short survey").wait_for(timeout=15_000)
    row.wait_for(state="detached", timeout=15_000)
