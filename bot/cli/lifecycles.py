"""`python -m bot close-lifecycles`: close the lifecycles whose return window has passed
(the web service also does it every LIFECYCLE_SWEEP_SECONDS)."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.cli.common import blocking, run_db_command
from bot.config import Settings

if TYPE_CHECKING:
    from bot.cli.common import Sessions, Subparsers


def add_commands(sub: Subparsers) -> None:
    sub.add_parser(
        "close-lifecycles",
        help="close the lifecycles of delivered purchases whose return window has passed "
        "(the web service also does it every LIFECYCLE_SWEEP_SECONDS)",
    ).set_defaults(handler=blocking(_close_lifecycles))


async def _close_lifecycles(settings: Settings, args: argparse.Namespace) -> int:
    from bot.domain import lifecycle as lifecycles
    from bot.storage.models import utcnow

    window = timedelta(days=settings.return_window_days)

    async def body(sessions: Sessions) -> int:
        closed = await lifecycles.close_all_completed(sessions, utcnow(), window)
        print(
            f"Closed {closed} completed lifecycle(s) "
            f"(delivered more than {settings.return_window_days} days ago, no support)."
        )
        return 0

    return await run_db_command(settings, body)
