"""Shop events webhook benchmark: sustained signed events per second into PostgreSQL with
concurrent senders and 10 % replays, against an unsigned (401) baseline in the same run.

    .venv-app/bin/python -m bench.events [--events 10000] [--senders 16] [--replays 0.1]

Method: docs/benchmarks.md, "Method" (figure and baseline in the same run, ratio reported).
"""
