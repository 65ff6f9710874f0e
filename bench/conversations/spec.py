"""Loading the held-out conversation files and turning their patterns into regexes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HELDOUT = Path(__file__).resolve().parent / "heldout"
PLACEHOLDER = re.compile(r"\{(\w+)(?:\.(\w+))?\}")
MACRO = re.compile(r"\$([A-Z_]+)")


@dataclass
class Conversation:
    category: str
    issue: int
    id: str
    about: str
    raw: dict[str, Any]
    macros: dict[str, str]
    clear_scheduled_surveys: bool
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def survey_due(self) -> bool | None:
        value = self.raw.get("survey_due")
        return bool(value) if value is not None else None


def load(paths: list[Path]) -> list[Conversation]:
    conversations: list[Conversation] = []
    for path in paths:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        defaults = document.get("defaults") or {}
        macros = {k: str(v) for k, v in (document.get("macros") or {}).items()}
        for raw in document["conversations"]:
            conversations.append(
                Conversation(
                    category=str(document["category"]),
                    issue=int(document.get("issue", 0)),
                    id=str(raw["id"]),
                    about=str(raw.get("about", "")),
                    raw=raw,
                    macros=macros,
                    clear_scheduled_surveys=bool(
                        raw.get(
                            "clear_scheduled_surveys",
                            defaults.get("clear_scheduled_surveys", False),
                        )
                    ),
                    customers=dict(raw.get("customers") or {}),
                )
            )
    return conversations


def substitute(text: str, values: dict[str, str], *, regex: bool) -> str:
    """`{o1}`, `{o1.digits}`, `{c.email}`, `{c.name}`, `{run}` → their values (escaped for a
    regex); unknown names stay as they are (a regex quantifier such as `{2}`)."""

    def one(match: re.Match[str]) -> str:
        key = match.group(1) if match.group(2) is None else f"{match.group(1)}.{match.group(2)}"
        if key not in values:
            return match.group(0)
        return re.escape(values[key]) if regex else values[key]

    return PLACEHOLDER.sub(one, text)


def pattern(text: str, macros: dict[str, str], values: dict[str, str]) -> re.Pattern[str]:
    expanded = MACRO.sub(
        lambda m: f"(?:{macros[m.group(1)]})" if m.group(1) in macros else m.group(0), text
    )
    return re.compile(substitute(expanded, values, regex=True), re.IGNORECASE | re.DOTALL)
