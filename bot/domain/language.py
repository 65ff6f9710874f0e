"""Which language a customer wrote in (issue #17 item 7): offline, with lingua.

The bot understands English only. A message clearly in another language is not sent to
the NLU (where it would be misread, often as feedback); the chat answers, in that language,
that the assistant speaks English for now and offers a person.

"Clearly" is deliberately strict, because a false positive sends an English customer away
from the bot while a miss only keeps today's behaviour:

* Order numbers, emails, URLs, digits, emoji and punctuation are removed first. What is
  left must have at least `MIN_WORDS` words and `MIN_LETTERS` letters: "ok danke",
  "merci", "gracias!", "A10001" stay English.
* The detector (restricted to `DEFAULT_LANGUAGES`) must put another language first with a
  confidence of at least `MIN_CONFIDENCE`, and English at most `MAX_ENGLISH_CONFIDENCE`
  (lingua's confidences over the candidate languages add up to 1).

Measured on the NLU training data (docs/decisions.md, "Other languages"): no English
training example is taken for another language.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # lingua is only imported when a detector is built
    from lingua import LanguageDetector as LinguaDetector

ENGLISH = "en"
# ISO 639-1 codes. Each language costs about 30 MB of memory and 0.15 s at start-up in
# lingua's high-accuracy mode (its low-accuracy mode is small but takes short English
# messages for Swedish or German, so it is not used).
DEFAULT_LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "it", "nl", "pt")
# Languages the bot answers in (domain.yml, utter_english_only); others get English.
REPLY_LANGUAGES = frozenset({"de", "fr", "es", "it", "nl", "pt"})
MIN_WORDS = 3
MIN_LETTERS = 12
MIN_CONFIDENCE = 0.6
MAX_ENGLISH_CONFIDENCE = 0.15
# Only the start of a long message is looked at: enough to tell, and the latency is bounded.
MAX_CHARS = 300

_NOISE = re.compile(
    r"\S+@\S+"  # emails
    r"|(?:https?://|www\.)\S+"  # links
    r"|#?\b[A-Za-z]{0,3}\d[\w-]*"  # order numbers, dates, amounts, any token with a digit
)
_NOT_LETTER = re.compile(r"[^\w']+|[\d_]+")


@dataclass(frozen=True)
class Detection:
    language: str  # ISO 639-1
    confidence: float
    english: float  # English's confidence


def letters_only(text: str) -> str:
    """The words of `text` without emails, links, order numbers, digits or symbols."""
    text = _NOISE.sub(" ", text[:MAX_CHARS])
    return " ".join(_NOT_LETTER.sub(" ", text).split())


def long_enough(words: str) -> bool:
    letters = sum(ch.isalpha() for ch in words)
    return len([w for w in words.split() if len(w) > 1]) >= MIN_WORDS and letters >= MIN_LETTERS


class LanguageDetector:
    """A lingua detector for a few languages; build it once per process (about 1 s)."""

    def __init__(self, languages: Sequence[str] = DEFAULT_LANGUAGES) -> None:
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        codes = {code.strip().lower() for code in languages if code.strip()} | {ENGLISH}
        unknown = sorted(c for c in codes if not hasattr(IsoCode639_1, c.upper()))
        if unknown:
            raise ValueError(f"language detection: unknown language codes {unknown}")
        chosen = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in codes]
        started = time.perf_counter()
        self._detector: LinguaDetector = (
            LanguageDetectorBuilder.from_languages(*chosen).with_preloaded_language_models().build()
        )
        self.load_seconds = time.perf_counter() - started
        self.languages = tuple(sorted(codes))

    def detect(self, text: str) -> Detection | None:
        """The language of `text` when it is long enough to tell; None otherwise."""
        words = letters_only(text)
        if not long_enough(words):
            return None
        values = self._detector.compute_language_confidence_values(words)
        if not values:
            return None
        english = next((v.value for v in values if v.language.iso_code_639_1.name == "EN"), 0.0)
        top = values[0]
        return Detection(top.language.iso_code_639_1.name.lower(), top.value, english)

    def other_language(self, text: str) -> str | None:
        """The language of a message clearly not in English (see the module's doc), else None."""
        found = self.detect(text)
        return found.language if found is not None and is_other_language(found) else None


def is_other_language(found: Detection) -> bool:
    return (
        found.language != ENGLISH
        and found.confidence >= MIN_CONFIDENCE
        and found.english <= MAX_ENGLISH_CONFIDENCE
    )
