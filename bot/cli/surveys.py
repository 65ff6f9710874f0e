"""`python -m bot survey-demo`: schedule a proactive survey for a customer (default: Jane,
C1001), as a shop event would; it opens the next time they open the chat."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bot.cli.common import blocking, run_db_command
from bot.config import Settings
from bot.domain import surveys

if TYPE_CHECKING:
    from bot.cli.common import Sessions, Subparsers

COMMAND = "survey-demo"


def add_commands(sub: Subparsers) -> None:
    demo = sub.add_parser(
        COMMAND,
        help="schedule a proactive survey for a customer (try it in the demo shop)",
        description="Schedules the survey a shop event would (see docs/decisions.md, "
        "Proactive surveys); sign in as the customer in the demo shop to be asked.",
    )
    demo.add_argument("--customer", default="C1001", help="customer external id (default: Jane)")
    demo.add_argument(
        "--trigger", default=surveys.TRIGGER_ORDER_DELIVERED, choices=list(surveys.TRIGGER_KINDS)
    )
    demo.add_argument("--order", help="order number (default: the customer's latest order)")
    demo.set_defaults(handler=blocking(run))


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.domain import proactive

    async def body(sessions: Sessions) -> int:
        async with sessions() as session, session.begin():
            dispatch = await proactive.schedule_for_customer(
                session, args.customer, args.trigger, args.order
            )
            print(
                f"Scheduled survey {dispatch.id} ({args.trigger}) for {args.customer}: it opens "
                "the next time they open the chat (fatigue and expiry apply)."
            )
        return 0

    return await run_db_command(settings, body)
