"""rasa_ext (loaded by Rasa itself, so checked in the rasa environment via a subprocess)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bot.config import PROJECT_ROOT

RASA_PYTHON = PROJECT_ROOT / ".venv-rasa" / "bin" / "python"

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
    result = subprocess.run(
        [str(RASA_PYTHON), "-c", ERASE_CHECK, str(tmp_path / "tracker.db")],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # The erased conversation has nothing left; the other one keeps both events.
    assert result.stdout.split() == ["0", "2"]
