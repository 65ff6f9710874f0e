"""Live hand-off latency benchmark: agent → customer widget → agent round trip through the
web service, with N conversations open, against a no-op round trip on the same sockets.

    .venv-app/bin/python -m bench.handoff_latency [--conversations 50] [--messages 20]

Method: docs/benchmarks.md, "Method" (figure and baseline in the same run, ratio reported).
"""
