"""Precision of the review inbox's flags: the share of flagged turns that a
reviewer who did not write the rules marks as real misunderstandings.

    # 1. a run that keeps its database (the regression suite here; see docs/benchmarks.md)
    .venv-app/bin/python -m bench.conversations --files tests/conversations/*.yml \\
        --concurrency 2 --keep-database /tmp/flags/suite.db
    # 2. a blind sheet: N flagged turns of one or more kept runs drawn with a fixed seed, in
    #    random order, each with the chat around it (customer and bot messages), WITHOUT the
    #    reasons, the NLU's reading or the run it came from (key.csv, for `score` only)
    .venv-app/bin/python -m bench.flag_precision sample --database /tmp/flags/suite.db \\
        [/tmp/flags/other.db ...] --n 100 --seed 24 --sheet /tmp/flags/sheet.md \\
        --labels /tmp/flags/labels.csv --key /tmp/flags/key.csv
    # 3. the reviewer writes `yes` (the bot misunderstood the customer at this message) or
    #    `no` in the label column of labels.csv, reading only sheet.md; then
    .venv-app/bin/python -m bench.flag_precision score --labels /tmp/flags/labels.csv \\
        --key /tmp/flags/key.csv

`score` prints the precision overall, per run and per reason (a turn flagged for two
reasons counts for both), with n; labelled turns that are not flagged in the key's database
are left out, so one labelled sheet drawn from the union of two rule sets' flags scores each
rule set through a key that names its own copy of the run.

    # figures of a kept run (bot_analytics.understanding_quality, flags per reason)
    .venv-app/bin/python -m bench.flag_precision figures --database /tmp/flags/suite.db
    # a copy of a kept run with its flags computed again by today's rules
    # (review_inbox.reflag: the stored NLU results and replies, the rules as they are now)
    .venv-app/bin/python -m bench.flag_precision reflag --database /tmp/flags/suite.db \\
        --out /tmp/flags/suite_reflagged.db A "real misunderstanding": the bot's reply to that message shows it did
not get what the customer meant (it asked what they meant, answered another request, or
the customer had to say it again because of the bot) — not a turn the bot handled right
that only looked unusual.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import random
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.domain import bot_analytics, review_inbox
from bot.domain.enums import MessageSender
from bot.storage.db import create_engine, create_session_factory
from bot.storage.models import Message, TurnFlag, utcnow

CONTEXT_BEFORE = 2  # customer turns before the flagged one (with the bot's replies)
YEAR = dt.timedelta(days=365)


async def _flagged(database: Path) -> tuple[dict[int, set[str]], dict[str, list[Message]]]:
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with create_session_factory(engine)() as db:
            reasons: dict[int, set[str]] = defaultdict(set)
            for message_id, reason in await db.execute(
                select(TurnFlag.message_id, TurnFlag.reason)
            ):
                reasons[message_id].add(reason)
            chats: dict[str, list[Message]] = defaultdict(list)
            ids = list(reasons)
            conversations = set(
                await db.scalars(select(Message.conversation_id).where(Message.id.in_(ids)))
            )
            for message in await db.scalars(
                select(Message)
                .where(Message.conversation_id.in_(conversations))
                .order_by(Message.id)
            ):
                chats[message.conversation_id].append(message)
        return dict(reasons), chats
    finally:
        await engine.dispose()


def _context(chat: list[Message], message_id: int) -> list[str]:
    at = next(i for i, m in enumerate(chat) if m.id == message_id)
    customers = [i for i, m in enumerate(chat) if m.sender is MessageSender.customer]
    before = [i for i in customers if i < at][-CONTEXT_BEFORE:]
    start = before[0] if before else at
    after = [i for i in customers if i > at]
    stop = after[1] if len(after) > 1 else len(chat)  # up to the next customer message
    lines = []
    for i in range(start, stop):
        m = chat[i]
        mark = ">>" if m.id == message_id else "  "
        text = " ".join(m.text.split())
        lines.append(f"{mark} {m.sender.value}: {text}")
    return lines


def sample(args: argparse.Namespace) -> int:
    pool: list[tuple[str, int]] = []
    contexts: dict[tuple[str, int], list[str]] = {}
    for database in args.database:
        reasons, chats = asyncio.run(_flagged(database))
        by_message = {m.id: m for chat in chats.values() for m in chat}
        for message_id in sorted(reasons):
            key = (str(database), message_id)
            pool.append(key)
            chat = chats[by_message[message_id].conversation_id]
            contexts[key] = _context(chat, message_id)
    rng = random.Random(args.seed)
    chosen = rng.sample(pool, min(args.n, len(pool)))  # in random order: the runs mixed
    out = [
        f"# Flagged turns: {len(chosen)} of {len(pool)} (seed {args.seed}), reasons hidden",
        "",
        "Mark each `>>` message in the labels file: yes = the bot misunderstood it, no = not.",
    ]
    for item, key in enumerate(chosen, 1):
        out += ["", f"## {item}", "", "```", *contexts[key], "```"]
    args.sheet.write_text("\n".join(out) + "\n", encoding="utf-8")
    with args.labels.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "label"])
        for item in range(1, len(chosen) + 1):
            writer.writerow([item, ""])
    with args.key.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "database", "message_id"])
        for item, (database, message_id) in enumerate(chosen, 1):
            writer.writerow([item, database, message_id])
    print(f"{len(chosen)} of {len(pool)} flagged turns → {args.sheet}, {args.labels}, {args.key}")
    return 0


def _percent(marks: list[bool]) -> str:
    return f"{sum(marks)}/{len(marks)} = {100 * sum(marks) / len(marks):.0f} %"


def score(args: argparse.Namespace) -> int:
    with args.labels.open(encoding="utf-8") as handle:
        labels = {int(row["item"]): row["label"].strip().lower() for row in csv.DictReader(handle)}
    missing = [item for item, label in labels.items() if label not in ("yes", "no")]
    if missing:
        print(f"unlabelled or unclear: {missing}", file=sys.stderr)
        return 2
    with args.key.open(encoding="utf-8") as handle:
        key = {
            int(row["item"]): (row["database"], int(row["message_id"]))
            for row in csv.DictReader(handle)
        }
    reasons: dict[str, dict[int, set[str]]] = {}
    for database in sorted({database for database, _ in key.values()}):
        reasons[database] = asyncio.run(_flagged(Path(database)))[0]
    per_reason: dict[str, list[bool]] = defaultdict(list)
    per_run: dict[str, list[bool]] = defaultdict(list)
    marks: list[bool] = []
    for item, label in labels.items():
        database, message_id = key[item]
        if not reasons[database].get(message_id):
            continue  # not flagged in that run's database (a sheet of another rule set's flags)
        marks.append(label == "yes")
        per_run[database].append(label == "yes")
        for reason in reasons[database].get(message_id, set()):
            per_reason[reason].append(label == "yes")
    if not marks:
        print("none of the labelled turns is flagged in these databases", file=sys.stderr)
        return 2
    print(f"overall: {_percent(marks)} real misunderstandings")
    for database, run in sorted(per_run.items()):
        print(f"- run {database}: {_percent(run)}")
    for reason, reason_marks in sorted(per_reason.items(), key=lambda item: -len(item[1])):
        print(f"- {reason}: {_percent(reason_marks)}")
    return 0


async def _figures(database: Path) -> dict[str, Any]:
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with create_session_factory(engine)() as db:
            start, end = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc), utcnow() + YEAR
            overall = (await bot_analytics.understanding_quality(db, start, end))["overall"]
            per_reason: dict[str, int] = {
                str(reason): int(n)
                for reason, n in await db.execute(
                    select(TurnFlag.reason, func.count()).group_by(TurnFlag.reason)
                )
            }
        return {**overall, "per_reason": per_reason}
    finally:
        await engine.dispose()


def figures(args: argparse.Namespace) -> int:
    found = asyncio.run(_figures(args.database))
    keys = (
        "conversations",
        "turns",
        "flagged_turns",
        "flagged_per_100_conversations",
        "fallbacks",
        "fallback_rate",
        "rephrases",
        "rephrase_rate",
        "containment",
        "misunderstanding_handovers",
    )
    for name in keys:
        print(f"{name}: {found[name]}")
    print("per reason: " + ", ".join(f"{r} {n}" for r, n in sorted(found["per_reason"].items())))
    return 0


async def _reflag(database: Path) -> int:
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with create_session_factory(engine)() as db, db.begin():
            return await review_inbox.reflag(db)
    finally:
        await engine.dispose()


def reflag(args: argparse.Namespace) -> int:
    if args.out.exists():
        print(f"{args.out} exists; not overwritten", file=sys.stderr)
        return 2
    shutil.copyfile(args.database, args.out)
    flagged = asyncio.run(_reflag(args.out))
    print(f"{flagged} flagged turns after reflagging → {args.out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.flag_precision",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample", help="draw flagged turns into a blind sheet and a labels file")
    s.add_argument(
        "--database", type=Path, nargs="+", required=True, help="SQLite files of kept runs"
    )
    s.add_argument("--n", type=int, default=100)
    s.add_argument("--seed", type=int, default=24)
    s.add_argument("--sheet", type=Path, required=True)
    s.add_argument("--labels", type=Path, required=True)
    s.add_argument("--key", type=Path, required=True, help="item → run and message (not shown)")
    c = sub.add_parser("score", help="precision per reason from the filled labels file")
    c.add_argument("--labels", type=Path, required=True)
    c.add_argument("--key", type=Path, required=True)
    f = sub.add_parser("figures", help="flagged turns per 100 conversations etc. of a kept run")
    f.add_argument("--database", type=Path, required=True)
    r = sub.add_parser("reflag", help="a copy of a kept run, flagged by the current rules")
    r.add_argument("--database", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    commands = {"sample": sample, "score": score, "figures": figures, "reflag": reflag}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
