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

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bench.conversations.runner import Result, run_many
from bench.conversations.spec import Conversation, load
from bot.config import Settings
from bot.storage.db import create_engine, create_session_factory
from bot.storage.models import StaffUser

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


# Conversations run CONCURRENCY at a time (each with its own customers, orders, client
# address and HTTP session; most of a conversation is waiting for replies); those that sign
# in to the console or wait for pushed messages run one after the other at the end
# (bench.conversations.runner.run_many).
CONCURRENCY = 4


def _selected() -> list[Conversation]:
    return [
        case.values[0] for case in _cases() if not any(mark.name == "skip" for mark in case.marks)
    ]


async def _run_selected(live_stack: Any) -> dict[str, Result]:
    settings = Settings.from_env()
    engine = create_engine(live_stack.database_url)
    try:
        # The suite starts with the team offline, as its hand-over conversations without
        # console steps assume: e2e tests that ran before signed agents in (presence is a
        # console request within the last minute, staff.online_staff).
        async with engine.begin() as connection:
            await connection.execute(update(StaffUser).values(last_seen_at=None))
        results = await run_many(
            live_stack.web_url,
            create_session_factory(engine),
            (settings.events_secret, settings.widget_secret),
            _selected(),
            concurrency=CONCURRENCY,
            used_numbers=USED_ORDER_NUMBERS,
        )
    finally:
        await engine.dispose()
    return {_key(result.conversation): result for result in results}


def _key(conversation: Conversation) -> str:
    return f"{conversation.category}/{conversation.id}"


@pytest.fixture(scope="session")
def conversation_results(live_stack: Any) -> dict[str, Result]:
    """Every selected conversation's result, run once for the session."""
    return asyncio.run(_run_selected(live_stack))


@pytest.mark.parametrize("conversation", _cases())
def test_conversation(conversation: Conversation, conversation_results: dict[str, Result]) -> None:
    result = conversation_results[_key(conversation)]
    problems = [
        *([f"error: {result.error}"] if result.error else []),
        *result.failures,
        *(f"WRONG ACCOUNT CHANGE {change}" for change in result.wrong_changes),
    ]
    assert not problems, f"{conversation.id} ({conversation.about}):\n  " + "\n  ".join(problems)
