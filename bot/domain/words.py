"""Readers of the customer's words: whether a message says something, by a pattern
(bot/domain/understanding.py and bot/domain/scores.py keep one pattern per meaning)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Words:
    """Called with a message: whether `pattern` occurs in it (anywhere, or with `at_start`
    only at its start). `None` reads as an empty message."""

    pattern: re.Pattern[str]
    at_start: bool = False

    def __call__(self, text: str | None) -> bool:
        text = text or ""
        found = self.pattern.match(text) if self.at_start else self.pattern.search(text)
        return found is not None
