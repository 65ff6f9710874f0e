"""Held-out multi-turn conversation benchmark (issues #17 and #18); see README.md."""
