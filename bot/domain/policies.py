"""Answers to shop-policy questions asked without an order (policy_question, issue #17).

The policies are a documented table in data/policies.yml: shipping destinations, delivery
times and costs, payment methods, gift wrapping, price match and the returns policy.
Every answer starts with the policy's name, so the customer knows which rule is quoted.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.domain import texts

POLICIES_FILE = Path(__file__).with_name("data") / "policies.yml"
_WORDS = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Policy:
    topic: str
    name: str
    keywords: frozenset[str]
    answer: str


@functools.cache
def policies() -> tuple[Policy, ...]:
    """The table, in the file's order (which also breaks ties between topics)."""
    raw = yaml.safe_load(POLICIES_FILE.read_text(encoding="utf-8"))
    return tuple(
        Policy(
            topic,
            str(entry["name"]),
            frozenset(str(k).lower() for k in entry["keywords"]),
            str(entry["answer"]),
        )
        for topic, entry in raw.items()
    )


def overview() -> str:
    names = [policy.name.lower() for policy in policies()]
    topics = texts.render("utter_policy_topics", first=", ".join(names[:-1]), last=names[-1])
    return texts.render("utter_policy_overview", topics=topics)


def answer(question: str, return_window_days: int) -> tuple[str, str | None]:
    """The reply naming the policy that best matches the question, and its topic; an
    overview of the policies (topic None) when the question names none."""
    words = set(_WORDS.findall((question or "").lower()))
    best, best_hits = None, 0
    for policy in policies():
        hits = len(words & policy.keywords)
        if hits > best_hits:
            best, best_hits = policy, hits
    if best is None:
        return overview(), None
    text = best.answer.replace("{return_window_days}", str(return_window_days))
    return f"{best.name}: {text}", best.topic
