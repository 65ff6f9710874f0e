"""`python -m bot COMMAND`: the parser of every command and the dispatch to its handler.

Each command group is a module of this package with `add_commands(sub)`, which adds its
sub-parsers and sets each one's `handler` (`set_defaults`): a function of the settings and
the parsed arguments that returns the exit code.
"""

from __future__ import annotations

import argparse
import sys

from bot.cli import (
    alerts,
    knowledge,
    lifecycles,
    privacy,
    report,
    review,
    service,
    shop,
    staff,
    surveys,
    tokens,
)
from bot.cli.common import Handler
from bot.config import ConfigError, Settings

# In the order `python -m bot --help` lists them.
COMMAND_GROUPS = (
    service,  # serve, migrate, demo, run, analytics-consumer
    lifecycles,  # close-lifecycles
    staff,
    tokens,  # token
    privacy,  # customer, purge-transcripts
    shop,  # send-event, import-feedback
    surveys,  # survey-demo
    report,
    review,  # export-reviewed
    alerts,
    knowledge,  # import-knowledge
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        handler: Handler = args.handler
        return handler(Settings.from_env(), args)
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
