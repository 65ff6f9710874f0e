"""The bot's fixed texts: the responses of domain.yml, rendered for the domain layer.

Every fixed sentence the bot says is a Rasa response in domain.yml (`utter_<area>_<what>`),
also when Python composes the reply (docs/decisions.md, "Bot texts live in domain.yml"):
`render("utter_order_status_shipped", order="A10001", ...)` fills its `{placeholders}` the
way Rasa's response interpolation does (rasa.core.nlg.interpolator.interpolate_text: every
`{name}` becomes the value's `str.format` form, no format specs; `{{` and `}}` are literal
braces), except that an unknown response or a missing value raises `TextError` where Rasa
would log and leave the template unfilled. Values computed in Python (dates, money, item
lists) are passed in ready-made.

A response with several variations renders its first: the domain layer does not see slots,
so conditional variations (survey questions, utter_english_only) stay Rasa's to choose and
a response rendered here should have one variation.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

# The repository's domain.yml (the action server image copies it next to bot/).
DOMAIN_FILE = Path(__file__).resolve().parents[2] / "domain.yml"
# As rasa.core.nlg.interpolator: a tag is `{` + a name without newlines or braces + `}`.
_TAG = re.compile(r"{([^\n{}]+?)}")


class TextError(LookupError):
    """A response that is not in domain.yml, or a placeholder given no value."""


@functools.lru_cache(maxsize=4)
def load(path: Path) -> Mapping[str, str]:
    """Each response's text (its first variation) in the domain file `path`, read once."""
    domain = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    loaded: dict[str, str] = {}
    for name, variations in (domain.get("responses") or {}).items():
        texts = [v["text"] for v in variations or [] if isinstance(v, dict) and "text" in v]
        if texts:
            loaded[name] = str(texts[0])
    return MappingProxyType(loaded)


@functools.lru_cache(maxsize=4)
def load_buttons(path: Path) -> Mapping[str, tuple[Mapping[str, str], ...]]:
    """Each response's buttons (its first variation's) in the domain file `path`, read once."""
    domain = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    loaded: dict[str, tuple[Mapping[str, str], ...]] = {}
    for name, variations in (domain.get("responses") or {}).items():
        first = next((v for v in variations or [] if isinstance(v, dict)), {})
        loaded[name] = tuple(
            MappingProxyType({"title": str(b["title"]), "payload": str(b["payload"])})
            for b in first.get("buttons") or []
        )
    return MappingProxyType(loaded)


def buttons(name: str) -> list[dict[str, str]]:
    """The buttons of the response `name` (its first variation), as a message carries them."""
    known = load_buttons(DOMAIN_FILE)
    if name not in known:
        raise TextError(f"domain.yml has no response {name!r} ({DOMAIN_FILE})")
    return [dict(b) for b in known[name]]


def responses() -> Mapping[str, str]:
    """The responses of `DOMAIN_FILE` (tests may point it at another file)."""
    return load(DOMAIN_FILE)


class _Values(dict[str, Any]):
    """The values of one render; a placeholder without one is an error naming the response."""

    def __init__(self, name: str, values: Mapping[str, object]) -> None:
        super().__init__(values)
        self.name = name

    def __missing__(self, key: str) -> Any:
        raise TextError(f"response {self.name!r} needs a value for {{{key}}}")


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def fill(template: str, values: Mapping[str, object], name: str = "<text>") -> str:
    """`template` with each `{name}` replaced by its value, as Rasa interpolates slots."""
    indexed = _TAG.sub(r"{0[\1]}", template)
    try:
        text = indexed.format(_Values(name, values))
        if "0[" in text and "0[" in indexed.format(_Blank()):
            # A tag written `{{name}}` is literal text: Rasa then gives the template's own
            # text, unescaped.
            return template.format({})
    except (IndexError, KeyError, ValueError) as error:
        raise TextError(f"response {name!r} is not a valid template: {error}") from error
    return text


def render(name: str, /, **values: object) -> str:
    """The response `name` of domain.yml (its first variation) with `values` filled in."""
    known = responses()
    if name not in known:
        raise TextError(f"domain.yml has no response {name!r} with a text ({DOMAIN_FILE})")
    return fill(known[name], values, name)
