"""`python -m bot alerts`: one round of CX alerts (bot/alerts.py), for cron or by hand."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from bot.cli.common import blocking, run_db_command
from bot.config import Settings

if TYPE_CHECKING:
    from bot.cli.common import Sessions, Subparsers

COMMAND = "alerts"


def _moment(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def add_commands(sub: Subparsers) -> None:
    found = sub.add_parser(
        COMMAND,
        help="detect CX alerts, store the new ones, post them and send the daily digest",
        description="One round of CX alerts (docs/dashboard.md): metrics leaving their band, "
        "new pitfalls, theme spikes over the last whole week; each alert is stored once, "
        "posted to ALERT_WEBHOOK_URL and emailed in the daily digest to ALERT_DIGEST_TO.",
    )
    found.add_argument("--now", type=_moment, help="evaluate as of this time (ISO 8601, UTC)")
    found.set_defaults(handler=blocking(run))


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from bot import alerts
    from bot.storage.models import utcnow

    async def body(sessions: Sessions) -> int:
        result = await alerts.run_once(sessions, settings, args.now or utcnow())
        for key in result.new:
            print(f"new: {key}")
        print(
            f"{len(result.new)} new alerts; {result.posted} posted to the webhook; "
            f"{result.digested} in the digest."
        )
        return 0

    return await run_db_command(settings, body)
