"""`python -m rasa_ext <arguments of the rasa command>`: Rasa's own command line, with the
behaviour-preserving speed-ups of rasa_ext/speedups.py installed first."""

from __future__ import annotations

from rasa.__main__ import main as rasa_main

from rasa_ext import speedups


def main() -> None:
    speedups.install()
    rasa_main()


if __name__ == "__main__":
    main()
