"""`python -m rasa_ext <arguments of the rasa command>`: Rasa's own command line, with the
behaviour-preserving speed-ups of rasa_ext/speedups.py installed first.

`run` takes the HTTP API's token from the environment (`RASA_TOKEN`) and adds
`--auth-token` inside the process: a token on the command line is readable by every user of
the machine (`ps`, /proc/PID/cmdline), which keeps showing the arguments Rasa was started
with, not the ones added here (issue #16)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from rasa.__main__ import main as rasa_main

from rasa_ext import speedups


def rasa_argv(argv: list[str], environ: Mapping[str, str]) -> list[str]:
    """`argv` with `--auth-token $RASA_TOKEN` for `run`, unless one is given."""
    given = any(a == "--auth-token" or a.startswith("--auth-token=") for a in argv)
    if len(argv) > 1 and argv[1] == "run" and not given and environ.get("RASA_TOKEN"):
        return [*argv, "--auth-token", environ["RASA_TOKEN"]]
    return list(argv)


def main() -> None:
    speedups.install()
    sys.argv = rasa_argv(sys.argv, os.environ)
    rasa_main()


if __name__ == "__main__":
    main()
