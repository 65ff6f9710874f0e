"""The conversation regression suite (issues #17 and #18): every conversation of
tests/conversations/*.yml, driven over the WebSocket against the session's real stack
(`live_stack`: trained model, action server, web service) by bench/conversations' runner.

One test per conversation (`<file>/<id>`); a failure names the conversation and every
expectation it missed. A conversation with `known_bug:` is a reported bug not fixed yet: it
is expected to fail (xfail, not strict).

Runtime rule (fixed, documented in bench/conversations/README.md): `make test` runs every
third conversation of each file (the 1st, 4th, 7th, … in file order); set
CONVERSATIONS=all to run all of them here, or run them all with
`python -m bench.conversations --files tests/conversations/*.yml`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.conversations.runner import Runner
from bench.conversations.spec import Conversation, load
from bot.config import Settings
from bot.storage.db import create_engine, create_session_factory

pytestmark = pytest.mark.e2e

FILES = sorted((Path(__file__).parent / "conversations").glob("*.yml"))
EVERY = 3  # make test runs conversations 0, 3, 6, … of each file
RUN_ALL = os.environ.get("CONVERSATIONS") == "all"
# Order numbers are random; one set for the whole session so no two conversations share one.
USED_ORDER_NUMBERS: set[str] = set()


def _cases() -> list[Any]:
    cases = []
    for path in FILES:
        for index, conversation in enumerate(load([path])):
            marks: list[Any] = []
            if not RUN_ALL and index % EVERY:
                marks.append(
                    pytest.mark.skip(reason="every third conversation (CONVERSATIONS=all)")
                )
            bug = conversation.raw.get("known_bug")
            if bug:
                marks.append(pytest.mark.xfail(reason=f"known bug: {bug}", strict=False))
            cases.append(
                pytest.param(conversation, id=f"{path.stem}/{conversation.id}", marks=marks)
            )
    return cases


def test_the_conversation_files_are_well_formed() -> None:
    """Unique ids per file, and every turn is one the runner knows."""
    assert FILES, "no tests/conversations/*.yml"
    for path in FILES:
        conversations = load([path])
        ids = [c.id for c in conversations]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate ids"
        for conversation in conversations:
            for turn in conversation.raw.get("turns") or []:
                kinds = {"open", "say", "click", "listen", "event", "agent"} & set(turn)
                assert len(kinds) == 1, f"{path.name}/{conversation.id}: bad turn {turn}"


@pytest.mark.parametrize("conversation", _cases())
async def test_conversation(conversation: Conversation, live_stack: Any) -> None:
    settings = Settings.from_env()
    engine = create_engine(live_stack.database_url)
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            runner = Runner(
                live_stack.web_url,
                create_session_factory(engine),
                settings.events_secret,
                settings.widget_secret,
                http,
            )
            runner.used_numbers = USED_ORDER_NUMBERS
            result = await runner.run(conversation)
    finally:
        await engine.dispose()
    problems = [
        *([f"error: {result.error}"] if result.error else []),
        *result.failures,
        *(f"WRONG ACCOUNT CHANGE {change}" for change in result.wrong_changes),
    ]
    assert not problems, f"{conversation.id} ({conversation.about}):\n  " + "\n  ".join(problems)
