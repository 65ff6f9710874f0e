"""The command line, `python -m bot COMMAND` (bot/__main__.py): one module per command
group, each adding its sub-parsers and their handlers (bot/cli/main.py)."""

from bot.cli.main import main

__all__ = ["main"]
