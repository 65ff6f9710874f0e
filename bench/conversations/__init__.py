"""Held-out multi-turn conversation benchmark; see README.md."""
