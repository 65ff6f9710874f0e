"""Against the real stack: Rasa's HTTP API refuses calls without its token (no model upload
from outside, CVE-2024-49375 class), and erasing a customer also empties the Rasa trackers
of their conversations (the CLI, as an operator runs it)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import aiohttp
import pytest

from bot.config import PROJECT_ROOT, Settings
from bot.domain.identity import issue_token

pytestmark = pytest.mark.e2e

SECRET_TEXT = "my neighbour is pelican-orbit-4711, where is my order"


async def test_rasa_http_api_needs_its_token(live_stack: Any) -> None:
    token = Settings.from_env().rasa_token
    async with aiohttp.ClientSession() as http:
        for method, path in (
            ("GET", "/status"),
            ("PUT", "/model"),  # replacing the model: remote code execution if it were open
            ("GET", "/conversations/x/tracker"),
            ("PUT", "/conversations/x/tracker/events"),
        ):
            for params in ({}, {"token": "wrong-token"}):
                async with http.request(
                    method, live_stack.rasa_url + path, params=params, json={}
                ) as response:
                    assert response.status == 401, (method, path, params)
        async with http.get(f"{live_stack.rasa_url}/status", params={"token": token}) as ok:
            assert ok.status == 200


async def _tracker(rasa_url: str, conversation_id: str) -> dict[str, Any]:
    token = Settings.from_env().rasa_token
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{rasa_url}/conversations/{conversation_id}/tracker",
            params={"token": token, "include_events": "ALL"},
        ) as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


def _cli(live_stack: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": live_stack.database_url,
        "RASA_URL": live_stack.rasa_url,
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_erase_empties_the_rasa_trackers_of_the_customer(live_stack: Any) -> None:
    external_id = "E2E-ERASE-1"
    identity = issue_token(
        Settings.from_env().widget_secret,
        external_id,
        name="Erin Erase",
        email="erin.erase@example.com",
    )
    origin = live_stack.web_url
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{live_stack.web_url}/ws", headers={"Origin": origin}) as ws,
    ):
        await ws.send_json({"type": "hello", "identity": identity})
        frame = await ws.receive_json(timeout=30)
        while frame["type"] != "session":
            frame = await ws.receive_json(timeout=30)
        await ws.send_json({"type": "message", "text": SECRET_TEXT, "client_id": "e2e-1"})
        while not (frame["type"] == "message" and frame["sender"] in ("bot", "system")):
            frame = await ws.receive_json(timeout=60)

    exported = await asyncio.to_thread(_cli, live_stack, "customer", "export", external_id)
    assert exported.returncode == 0, exported.stderr
    [conversation] = json.loads(exported.stdout)["conversations"]
    before = await _tracker(live_stack.rasa_url, conversation["id"])
    assert SECRET_TEXT in json.dumps(before)  # Rasa does hold the text

    erased = await asyncio.to_thread(_cli, live_stack, "customer", "erase", external_id)
    assert erased.returncode == 0, erased.stdout + erased.stderr
    assert "Cleared 1 conversation tracker(s) in Rasa." in erased.stdout
    after = await _tracker(live_stack.rasa_url, conversation["id"])
    # Reading a tracker may start a fresh session (session-start events); nothing is left
    # of what was said or who said it.
    assert [e for e in after["events"] if e["event"] in ("user", "bot", "slot")] == [], after
    assert "pelican-orbit" not in json.dumps(after)
    assert "erin" not in json.dumps(after).lower()
