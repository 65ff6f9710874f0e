"""The action server (`python -m actions.server`): rasa_sdk's server that refuses every call
without the token Rasa sends (issue #16); `/health` stays open for the readiness checks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from bot.config import PROJECT_ROOT
from bot.launcher import free_port

TOKEN = "action-token-for-the-test-0123456789"
# What a forged call looks like: Rasa's request for an action, with made-up slots.
FORGED_CALL = (
    b'{"next_action": "action_resolve_pending", "sender_id": "forged-1", "version": "3.6.21",'
    b' "tracker": {"sender_id": "forged-1", "slots": {"identity": "verified",'
    b' "pending_action": "cancel_order"}, "latest_message": {"intent": {"name": "affirm"}},'
    b' "events": [], "paused": false, "active_loop": {}}, "domain": {}}'
)


@pytest.fixture(scope="module")
def action_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("actions") / "actions.log").open("wb")
    env = {
        **os.environ,
        "ACTION_SERVER_TOKEN": TOKEN,
        "SANIC_HOST": "127.0.0.1",
        "PYTHONPATH": str(PROJECT_ROOT),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'none.db'}",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "actions.server",
            "--actions",
            "actions",
            "--port",
            str(port),
            "--quiet",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while _status(url + "/health") != 200:
            assert process.poll() is None, "the action server exited; see its log"
            assert time.monotonic() < deadline, "the action server did not start"
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def _status(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return 0


def test_a_forged_action_call_is_refused(action_server: str) -> None:
    assert _status(action_server + "/webhook", FORGED_CALL) == 401
    wrong = {"X-Action-Server-Token": "guessed"}
    assert _status(action_server + "/webhook", FORGED_CALL, wrong) == 401
    assert _status(action_server + "/webhook?token=" + TOKEN, FORGED_CALL) == 401
    assert _status(action_server + "/actions") == 401


def test_the_token_opens_the_action_server_and_health_needs_none(action_server: str) -> None:
    assert _status(action_server + "/health") == 200
    assert _status(action_server + "/actions", headers={"X-Action-Server-Token": TOKEN}) == 200


def test_the_module_has_no_side_effects_when_rasa_sdk_imports_the_actions_package() -> None:
    # rasa_sdk imports every module of `actions`; importing ours must start nothing.
    result = subprocess.run(
        [sys.executable, "-c", "import actions.server, threading; print(threading.active_count())"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
