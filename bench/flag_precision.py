"""Precision of the review inbox's flags (issue #24): the share of flagged turns that a
reviewer who did not write the rules marks as real misunderstandings.

    # 1. a run that keeps its database (the regression suite here; see docs/benchmarks.md)
    .venv-app/bin/python -m bench.conversations --files tests/conversations/*.yml \\
        --concurrency 2 --keep-database /tmp/flags/suite.db
    # 2. a blind sheet: N flagged turns drawn with a fixed seed, each with the chat around
    #    it (customer and bot messages), WITHOUT the reasons or the NLU's reading
    .venv-app/bin/python -m bench.flag_precision sample --database /tmp/flags/suite.db \\
        --n 50 --seed 24 --sheet /tmp/flags/sheet.md --labels /tmp/flags/labels.csv
    # 3. the reviewer writes `yes` (the bot misunderstood the customer at this message) or
    #    `no` in the label column of labels.csv, reading only sheet.md; then
    .venv-app/bin/python -m bench.flag_precision score --database /tmp/flags/suite.db \\
        --labels /tmp/flags/labels.csv

`score` prints the precision overall and per reason (a turn flagged for two reasons counts
for both), with n. A "real misunderstanding": the bot's reply to that message shows it did
not get what the customer meant (it asked what they meant, answered another request, or
the customer had to say it again because of the bot) — not a turn the bot handled right
that only looked unusual.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import sys
from collections import defaultdict
from pathlib import Path

from sqlalchemy import select

from bot.storage.db import create_engine, create_session_factory
from bot.storage.models import Message, MessageSender, TurnFlag

CONTEXT_BEFORE = 2  # customer turns before the flagged one (with the bot's replies)


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
    reasons, chats = asyncio.run(_flagged(args.database))
    ids = sorted(reasons)
    chosen = sorted(random.Random(args.seed).sample(ids, min(args.n, len(ids))))
    by_message = {m.id: m for chat in chats.values() for m in chat}
    out = [
        f"# Flagged turns: {len(chosen)} of {len(ids)} (seed {args.seed}), reasons hidden",
        "",
        "Mark each `>>` message in the labels file: yes = the bot misunderstood it, no = not.",
    ]
    for number, message_id in enumerate(chosen, 1):
        chat = chats[by_message[message_id].conversation_id]
        out += [
            "",
            f"## {number}. message {message_id}",
            "",
            "```",
            *_context(chat, message_id),
            "```",
        ]
    args.sheet.write_text("\n".join(out) + "\n", encoding="utf-8")
    with args.labels.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["message_id", "label"])
        for message_id in chosen:
            writer.writerow([message_id, ""])
    print(f"{len(chosen)} of {len(ids)} flagged turns → {args.sheet}, {args.labels}")
    return 0


def score(args: argparse.Namespace) -> int:
    reasons, _chats = asyncio.run(_flagged(args.database))
    with args.labels.open(encoding="utf-8") as handle:
        labels = {
            int(row["message_id"]): row["label"].strip().lower() for row in csv.DictReader(handle)
        }
    missing = [m for m, label in labels.items() if label not in ("yes", "no")]
    if missing:
        print(f"unlabelled or unclear: {missing}", file=sys.stderr)
        return 2
    per_reason: dict[str, list[bool]] = defaultdict(list)
    for message_id, label in labels.items():
        for reason in reasons.get(message_id, set()):
            per_reason[reason].append(label == "yes")
    real = sum(label == "yes" for label in labels.values())
    print(
        f"overall: {real}/{len(labels)} = {100 * real / len(labels):.0f} % real misunderstandings"
    )
    for reason, marks in sorted(per_reason.items(), key=lambda item: -len(item[1])):
        print(f"- {reason}: {sum(marks)}/{len(marks)} = {100 * sum(marks) / len(marks):.0f} %")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flag_precision", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample", help="draw flagged turns into a blind sheet and a labels file")
    s.add_argument("--database", type=Path, required=True, help="SQLite file of a kept run")
    s.add_argument("--n", type=int, default=50)
    s.add_argument("--seed", type=int, default=24)
    s.add_argument("--sheet", type=Path, required=True)
    s.add_argument("--labels", type=Path, required=True)
    c = sub.add_parser("score", help="precision per reason from the filled labels file")
    c.add_argument("--database", type=Path, required=True)
    c.add_argument("--labels", type=Path, required=True)
    args = parser.parse_args()
    return sample(args) if args.command == "sample" else score(args)


if __name__ == "__main__":
    sys.exit(main())
