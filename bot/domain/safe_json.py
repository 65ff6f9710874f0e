"""The one JSON reader for everything that comes from outside (issue #16 item 5).

`loads` is `json.loads` with two limits, so malformed input is a clear 400 and never a
500, a dropped socket or a RecursionError in a background task:

* **Depth** at most `MAX_DEPTH` (64) arrays/objects inside each other. The nesting is
  counted by a scan before parsing (a regular expression over strings and brackets, no
  recursion), so a 100 000-level body never reaches Python's recursive parser, which
  fails with RecursionError near 1 000 levels. None of our payloads goes deeper than 5.
* **Finite numbers only**: `NaN`, `Infinity`, `-Infinity` (which Python's json accepts)
  and literals that overflow to infinity (`1e999`) are refused.

Errors raise `BadJson` (a `DomainError` → 400 `{"error": {"code": "bad_json", ...}}` in
the web layer, and a `ValueError`, so readers that skip bad input keep doing so).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from bot.domain.errors import DomainError

MAX_DEPTH = 64
# A JSON string (escapes included) or one bracket; the strings are matched whole so the
# brackets inside them are not counted.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
NON_FINITE_MESSAGE = "NaN and Infinity are not allowed in JSON: send finite numbers (or null)."


class BadJson(DomainError, ValueError):
    code = "bad_json"
    status = 400


def _refuse_constant(name: str) -> Any:
    raise BadJson(NON_FINITE_MESSAGE)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJson(NON_FINITE_MESSAGE)
    return value


def nesting_depth(text: str, limit: int = MAX_DEPTH) -> int:
    """How deep arrays and objects nest in `text`; stops counting just above `limit`.
    Exact for valid JSON; for broken input never less than what the parser would reach
    before it fails (it tokenises strings the same way)."""
    depth = deepest = 0
    if "[" not in text and "{" not in text:
        return 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def loads(data: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON from outside, or raise `BadJson` with a message safe to show."""
    if isinstance(data, (bytes, bytearray)):
        try:
            text = bytes(data).decode(json.detect_encoding(data), "strict")
        except (UnicodeDecodeError, LookupError) as exc:
            raise BadJson("The body is not valid JSON: it is not UTF-8 text.") from exc
    else:
        text = data
    if nesting_depth(text, max_depth) > max_depth:
        raise BadJson(f"JSON nested deeper than {max_depth} levels is refused.")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except BadJson:
        raise
    except json.JSONDecodeError as exc:
        raise BadJson(
            f"The body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})."
        ) from exc
    except (ValueError, RecursionError) as exc:  # e.g. an integer of over 4300 digits
        raise BadJson("The body is not valid JSON (a value is out of range).") from exc
