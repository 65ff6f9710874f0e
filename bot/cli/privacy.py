"""`python -m bot customer export|erase ID` and `python -m bot purge-transcripts`.

Exit codes: 0 done; 1 error (unknown customer, database problem); 3 the database part is
done but Rasa could not be reached to clear the conversation trackers (run it again when
Rasa is up: erasure is idempotent).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.cli.common import blocking, run_db_command
from bot.config import Settings

if TYPE_CHECKING:
    from bot.cli.common import Sessions, Subparsers

EXIT_TRACKERS_NOT_CLEARED = 3
CLI_ACTOR = "cli"


def add_commands(sub: Subparsers) -> None:
    customer = sub.add_parser("customer", help="customer data rights: export, erase")
    customer_sub = customer.add_subparsers(dest="customer_command", required=True)
    export = customer_sub.add_parser("export", help="print all of a customer's data as JSON")
    export.add_argument(
        "id", help="the shop's customer id (or our numeric id); else a reviewer's email or handle"
    )
    export.add_argument("--output", "-o", help="write to this file instead of standard output")
    export.set_defaults(handler=blocking(_export_command))
    erase = customer_sub.add_parser(
        "erase", help="erase a customer's personal data and transcripts (also in Rasa)"
    )
    erase.add_argument(
        "id", help="the shop's customer id (or our numeric id); else a reviewer's email or handle"
    )
    erase.set_defaults(handler=blocking(_erase_command))
    purge = sub.add_parser(
        "purge-transcripts", help="blank message texts older than TRANSCRIPT_RETENTION_DAYS"
    )
    purge.add_argument("--days", type=int, help="override TRANSCRIPT_RETENTION_DAYS")
    purge.set_defaults(handler=blocking(_purge_command))


# Domain and database errors: "Error: ..." and exit 1 (bot/cli/common.py).


async def _export_command(settings: Settings, args: argparse.Namespace) -> int:
    return await run_db_command(
        settings, lambda sessions: _export(sessions, args.id, args.output, settings.photo_dir)
    )


async def _erase_command(settings: Settings, args: argparse.Namespace) -> int:
    return await run_db_command(settings, lambda sessions: _erase(sessions, settings, args.id))


async def _purge_command(settings: Settings, args: argparse.Namespace) -> int:
    days = args.days or settings.transcript_retention_days
    return await run_db_command(settings, lambda sessions: _purge(sessions, days))


async def _export(
    sessions: Sessions, ref: str, output: str | None, photo_dir: Path | None = None
) -> int:
    from bot.domain import privacy, reviewer_privacy
    from bot.domain.errors import NotFound

    try:
        async with sessions() as db, db.begin():
            document = await privacy.export_customer(db, ref, actor=CLI_ACTOR, photo_dir=photo_dir)
        what = f"customer {document['customer']['id']}"
    except NotFound:  # a reviewer who is not a customer, by email or handle (issue #23)
        async with sessions() as db, db.begin():
            document = await reviewer_privacy.export_reviewers(db, ref, actor=CLI_ACTOR)
        what = "reviewer " + ", ".join(str(r["id"]) for r in document["reviewers"])
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if output:
        await asyncio.to_thread(Path(output).write_text, text + "\n", encoding="utf-8")
        print(f"Exported {what} to {output}.", file=sys.stderr)
    else:
        print(text)
    return 0


async def _erase(sessions: Sessions, settings: Settings, ref: str) -> int:
    from bot.domain import photos, privacy, reviewer_privacy
    from bot.domain.errors import NotFound

    try:
        async with sessions() as db, db.begin():
            erasure = await privacy.erase_customer(db, ref, actor=CLI_ACTOR)
    except NotFound:  # a reviewer who is not a customer, by email or handle (issue #23)
        async with sessions() as db, db.begin():
            counts = await reviewer_privacy.erase_reviewers(db, ref, actor=CLI_ACTOR)
        changed = ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "nothing left"
        print(f"Reviewer {ref} erased ({changed}).")
        return 0
    state = "was already erased; re-checked" if erasure.already_erased else "erased"
    changed = ", ".join(f"{k} {v}" for k, v in erasure.counts.items() if v) or "nothing left"
    print(f"Customer {erasure.customer_id} {state} in the database ({changed}).")
    # Their photos' files, once the rows say erased (issue #19).
    photos.PhotoStore(settings.photo_dir).remove(erasure.photo_keys)
    code = await _clear_trackers(settings, erasure.conversation_ids, sys.stdout)
    await end_live_tabs(settings, erasure.conversation_ids)
    return code


async def end_live_tabs(settings: Settings, conversation_ids: list[str]) -> None:
    """With REDIS_URL (production profile), the web replicas close the erased conversations'
    open widget tabs, as the admin API does; without it this process cannot reach them."""
    if not settings.redis_url or not conversation_ids:
        return
    from redis.asyncio import Redis

    from bot.web.hub import Fanout

    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=3)
    try:
        bus = Fanout(redis)
        for conversation_id in conversation_ids:
            await bus.publish("chat_end", conversation_id, {})
    finally:
        await redis.aclose()


async def _clear_trackers(settings: Settings, conversation_ids: list[str], out: TextIO) -> int:
    import aiohttp

    from bot.domain.privacy import clear_trackers
    from bot.web.rasa_client import RasaClient, RasaUnavailable

    if not conversation_ids:
        print("No conversations, so nothing to clear in Rasa.", file=out)
        return 0
    async with aiohttp.ClientSession() as http:
        rasa = RasaClient(http, settings.rasa_url, settings.rasa_token, timeout=10)
        outcome = await clear_trackers(rasa, conversation_ids, RasaUnavailable)
    if outcome.error is None:
        print(f"Cleared {outcome.cleared} conversation tracker(s) in Rasa.", file=out)
        return 0
    print(
        f"WARNING: Rasa at {settings.rasa_url} could not clear {len(outcome.failed)} of "
        f"{len(conversation_ids)} conversation tracker(s) ({outcome.error}). The database is "
        "erased, but Rasa still holds those conversations' events until it restarts (in-memory "
        "tracker store). Run this command again when Rasa is running.",
        file=sys.stderr,
    )
    return EXIT_TRACKERS_NOT_CLEARED


async def _purge(sessions: Sessions, days: int) -> int:
    from bot.domain import privacy

    async with sessions() as db, db.begin():
        purged = await privacy.purge_transcripts(db, days, actor=CLI_ACTOR)
    print(f"Blanked the text of {purged} message(s) older than {days} days.")
    return 0
