"""Dashboard benchmark: python -m bench.dashboard (see __main__.py)."""
