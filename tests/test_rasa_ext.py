"""rasa_ext (loaded by Rasa itself, so checked in the rasa environment via a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from bot.config import PROJECT_ROOT

RASA_PYTHON = PROJECT_ROOT / ".venv-rasa" / "bin" / "python"


def _rasa_python(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the Rasa venv's Python on the project (rasa_ext needs Rasa, which we lack here)."""
    return subprocess.run(
        [str(RASA_PYTHON), *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


ERASE_CHECK = """
import asyncio, sys
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa_ext.tracker_store import StrictSQLTrackerStore

def tracker(sender, text):
    return DialogueStateTracker.from_events(sender, [ActionExecuted("action_listen"), UserUttered(text)])

async def main(db):
    store = StrictSQLTrackerStore(Domain.empty(), dialect="sqlite", db=db)
    await store.save(tracker("keep", "hello"))
    await store.save(tracker("gone", "my secret address"))
    # What Rasa's PUT /conversations/gone/tracker/events with [] saves (customer erasure).
    await store.save(DialogueStateTracker.from_events("gone", []))
    gone = await store.retrieve("gone")
    print(len(gone.events) if gone else 0, len((await store.retrieve("keep")).events))

asyncio.run(main(sys.argv[1]))
"""


def test_replacing_a_tracker_with_no_events_erases_it_from_the_sql_store(tmp_path: Path) -> None:
    result = _rasa_python("-c", ERASE_CHECK, str(tmp_path / "tracker.db"))
    assert result.returncode == 0, result.stderr[-2000:]
    # The erased conversation has nothing left; the other one keeps both events.
    assert result.stdout.split() == ["0", "2"]


STREAM_CHECK = """
import asyncio, json, sys
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa_ext.tracker_store import StrictSQLTrackerStore

class Recorder(EventBroker):
    def __init__(self):
        self.published = []
    def publish(self, event):
        self.published.append(event)

TURNS = [
    [ActionExecuted("action_listen"), UserUttered("hi")],
    [ActionExecuted("utter_greet"), BotUttered("hello"), ActionExecuted("action_listen")],
    [UserUttered("where is my order"), ActionExecuted("order_form")],
    # a new session within a turn: the stored count restarts at its SessionStarted
    [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen"),
     UserUttered("again")],
    [ActionExecuted("utter_greet"), BotUttered("hello again")],
]

async def run(store_class, db):
    broker = Recorder()
    store = store_class(Domain.empty(), dialect="sqlite", db=db, event_broker=broker)
    for turn in TURNS:  # as Rasa's processor: read the last session, add the turn, save
        tracker = await store.retrieve("c-1") or DialogueStateTracker("c-1", [])
        for event in turn:
            tracker.update(event)
        await store.save(tracker)
    stored = await store.retrieve_full_tracker("c-1")
    return broker.published, [e.as_dict() for e in stored.events]

async def main(folder):
    ours = await run(StrictSQLTrackerStore, folder + "/ours.db")
    rasas = await run(SQLTrackerStore, folder + "/rasa.db")
    print(json.dumps({"same": ours == rasas, "published": [e["event"] for e in ours[0]],
                      "stored": len(ours[1])}))

asyncio.run(main(sys.argv[1]))
"""


def test_streaming_events_publishes_exactly_what_rasas_own_method_does(tmp_path: Path) -> None:
    """The store counts the stored events instead of reading them back (rasa_ext's
    `stream_events`): over turns and a new session, the broker gets the same events as
    with Rasa's SQLTrackerStore, each once, and the same events are stored."""
    result = _rasa_python("-c", STREAM_CHECK, str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {
        "same": True,
        "published": ["action", "user", "action", "bot", "action", "user", "action",
                      "action", "session_started", "action", "user", "action", "bot"],
        "stored": 13,
    }  # fmt: skip


SPEEDUP_CHECK = """
import json
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa_ext import speedups

PAYLOADS = [
    {"events": [{"event": "slot", "name": "email", "value": "a@b.c"}], "responses": [{"text": "hi"}]},
    {"events": [], "responses": []},
    {},
    {"events": "not a list"},
    {"events": [{"event": "no_such_event"}]},
    {"events": [{"event": "slot"}]},
    {"responses": ["not an object"]},
]

def outcomes(validate):
    results = []
    for payload in PAYLOADS:
        try:
            results.append(["valid", validate(RemoteAction("x", None), payload)])
        except ValidationError as error:
            results.append(["invalid", error.message, list(error.path)])
    return results

original = outcomes(RemoteAction._validate_action_result)
speedups.install()
assert RemoteAction._validate_action_result is speedups.validate_action_result
print(json.dumps({"original": original, "fast": outcomes(RemoteAction._validate_action_result)}))
"""


def test_fast_action_result_validation_gives_rasas_exact_outcomes() -> None:
    """rasa_ext.speedups builds the response validator once; every payload, valid or not,
    must get exactly what Rasa's own method gives (result, or error message and path)."""
    result = _rasa_python("-c", SPEEDUP_CHECK)
    assert result.returncode == 0, result.stderr[-2000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcomes["fast"] == outcomes["original"]
    kinds = [outcome[0] for outcome in outcomes["original"]]
    assert kinds == ["valid", "valid", "valid", "invalid", "invalid", "invalid", "invalid"]
    assert "Failed to validate Action server response" in outcomes["fast"][3][1]


def test_rasa_ext_entry_point_runs_rasas_command_line() -> None:
    result = _rasa_python("-m", "rasa_ext", "--version")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Rasa Version      :         3.6.21" in result.stdout
