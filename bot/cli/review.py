"""`python -m bot export-reviewed`: the review inbox's confirmed and corrected turns as Rasa
NLU training data, personal data replaced (bot/domain/review_export.py, issue #24)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.common import blocking, run_db_command
from bot.config import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from bot.cli.common import Sessions, Subparsers

COMMAND = "export-reviewed"
DEFAULT_OUT = PROJECT_ROOT / "data" / "nlu" / "reviewed.yml"


def add_commands(sub: Subparsers) -> None:
    export = sub.add_parser(
        COMMAND,
        help="write the reviewed turns to data/nlu/reviewed.yml (Rasa NLU, no personal data)",
        description="Confirmed and corrected turns of the review inbox as Rasa NLU examples; "
        "emails, order numbers and names replaced by placeholders of the same shape; "
        "held-out texts and texts already in the training data left out. `make train` "
        "picks the file up.",
    )
    export.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output file")
    export.set_defaults(handler=blocking(run))


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.domain import review_export

    async def body(sessions: Sessions) -> int:
        async with sessions() as session:
            turns, names = await review_export.reviewed_turns(session)
        result = review_export.write_export(turns, names, PROJECT_ROOT, args.out)
        print(
            f"Wrote {result.written} examples to {result.path} ({result.reviewed} reviewed; "
            f"left out: {result.known} already in the training data, {result.held_out} "
            "held-out texts)."
        )
        return 0

    return await run_db_command(settings, body)
