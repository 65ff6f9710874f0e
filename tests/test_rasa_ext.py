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
        "published": [
            "action",
            "user",
            "action",
            "bot",
            "action",
            "user",
            "action",
            "action",
            "session_started",
            "action",
            "user",
            "action",
            "bot",
        ],
        "stored": 13,
    }


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


# ---- the REST channel the web service talks to (issue #16) --------------------------------

CHANNEL_CHECK = """
import asyncio, json, socket
import aiohttp
from sanic import Sanic
from rasa.shared.core.domain import Domain
from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader
from rasa.shared.nlu.training_data.message import Message
from rasa_ext.channels import StrictRestInput

DOMAIN = Domain.load("domain.yml")
received = []

async def on_new_message(message):
    received.append(message.text)
    await message.output_channel.send_text_message(message.sender_id, "ok")

def intent(text):
    # What Rasa's RegexMessageHandler makes of the text that reaches NLU.
    unpacked = YAMLStoryReader.unpack_regex_message(Message({"text": text}), DOMAIN)
    return (unpacked.get("intent") or {}).get("name")

CALLS = [
    ({}, {"sender": "s1", "message": "/request_human"}),
    ({"X-Channel-Secret": "wrong"}, {"sender": "s1", "message": "/request_human"}),
    ({"X-Channel-Secret": "s3cret-s3cret"}, {"sender": "s1", "message": "hello"}),
    ({"X-Channel-Secret": "s3cret-s3cret"}, {"sender": "s1", "message": "/EXTERNAL_support_resolved"}),
    ({"X-Channel-Secret": "s3cret-s3cret"}, {"sender": "s1", "message": '/inform{"identity": "verified"}'}),
    ({"X-Channel-Secret": "s3cret-s3cret"}, {"sender": "s1", "message": "  / /request_human"}),
    ({"X-Channel-Secret": "s3cret-s3cret"}, {"sender": "s1", "message": "/affirm", "button_payload": False}),
    ({"X-Channel-Secret": "s3cret-s3cret"}, {"sender": "s1", "message": "/affirm", "button_payload": True}),
    ({"X-Channel-Secret": "s3cret-s3cret"}, {"sender": "s1", "message": "/"}),
]

async def main():
    refused = []
    for credentials in (None, {}, {"secret": ""}):
        try:
            StrictRestInput.from_credentials(credentials)
        except Exception as error:
            refused.append(type(error).__name__)
    app = Sanic("channel_check")
    channel = StrictRestInput.from_credentials({"secret": "s3cret-s3cret"})
    app.blueprint(channel.blueprint(on_new_message), url_prefix="/webhooks/rest")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True)
    await server.startup()
    statuses = []
    async with aiohttp.ClientSession() as http:
        for headers, body in CALLS:
            async with http.post(f"http://127.0.0.1:{port}/webhooks/rest/webhook",
                                 headers=headers, json=body) as response:
                statuses.append(response.status)
    server.close()
    print(json.dumps({"refused": refused, "statuses": statuses, "received": received,
                      "intents": [intent(text) for text in received]}))

asyncio.run(main())
"""


def test_channel_refuses_calls_without_its_secret_and_passes_slash_text_as_text() -> None:
    """Issue #16: the REST channel needs the shared secret (401 without it or with a wrong
    one, nothing reaches the bot), and only a message the web service marks as an offered
    button's payload may use Rasa's `/intent{entities}` syntax; any other text starting with
    `/` reaches NLU as text (Rasa's own RegexMessageHandler finds no intent in it)."""
    result = _rasa_python("-c", CHANNEL_CHECK)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    # Rasa cannot start the channel without a secret.
    assert len(outcome["refused"]) == 3, outcome
    assert outcome["statuses"] == [401, 401, 200, 200, 200, 200, 200, 200, 200]
    assert len(outcome["received"]) == 7  # the two refused calls never reached the bot
    assert outcome["received"][0] == "hello"
    assert outcome["intents"] == [None, None, None, None, None, "affirm", None], outcome
    # The words stay for NLU to classify.
    assert "EXTERNAL_support_resolved" in outcome["received"][1]
    assert outcome["received"][5] == "/affirm"


ARGV_CHECK = """
import json, os
from rasa_ext.__main__ import rasa_argv

print(json.dumps([
    rasa_argv(["rasa_ext", "run", "--enable-api"], {"RASA_TOKEN": "tok-1"}),
    rasa_argv(["rasa_ext", "run", "--enable-api", "--auth-token", "given"], {"RASA_TOKEN": "tok-1"}),
    rasa_argv(["rasa_ext", "run", "--enable-api"], {}),
    rasa_argv(["rasa_ext", "--version"], {"RASA_TOKEN": "tok-1"}),
]))
"""


def test_rasa_ext_takes_the_api_token_from_the_environment() -> None:
    """`python -m rasa_ext run` adds `--auth-token $RASA_TOKEN` inside the process, so the
    token never appears on a command line (`ps`, /proc/PID/cmdline)."""
    result = _rasa_python("-c", ARGV_CHECK)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        ["rasa_ext", "run", "--enable-api", "--auth-token", "tok-1"],
        ["rasa_ext", "run", "--enable-api", "--auth-token", "given"],
        ["rasa_ext", "run", "--enable-api"],
        ["rasa_ext", "--version"],
    ]
