"""Reviewed turns as Rasa NLU training data, without personal data (issue #24).

`python -m bot export-reviewed` writes `data/nlu/reviewed.yml` (Rasa 3 NLU format,
`version: "3.1"`), which `make train` picks up with the rest of data/ (its fingerprint
covers every file there). Each confirmed or corrected turn is one example of the intent the
reviewer chose; dismissed turns ("not a real request") are left out, and so are texts the
training data already holds and texts of the held-out sets (bench/, never trained on).

Personal data is replaced by realistic placeholders of the same shape, chosen
deterministically from the original (an export run twice writes the same file):

* emails → `firstname.lastname@example.com` style addresses of example domains;
* order numbers (the shop's `A12345`, `a12345`, `#12345`, `12345`) → another number of the
  same shape; other runs of 6+ digits (phone, tracking, card numbers) → as many digits;
* names → names from a fixed list, found by three rules: (1) the name tokens of every
  customer row, (2) a word after a cue ("my name is", "I'm", "this is", "call me",
  "regards", "thanks,", "cheers,", "from", "signed", "for") written with a capital (in
  lower case too after "my name is", "call me", "regards", "cheers", "signed"), or before
  " here" ("Mirela here"), and the word right after a name unless ordinary (a surname),
  (3) any capitalised word that is not the first of its sentence and not an ordinary word
  (one the NLU training data uses in lower case, or a common capitalised word: days,
  months, "I", product words of the shop). Rule 3 over-replaces a capitalised product
  name now and then, which costs nothing; a name written in lower case without a cue
  ("ask jonas") is the known gap.

Entities the reviewer marked (or the NLU found, for a confirmed turn) follow their text:
an order number entity gets its placeholder and stays annotated as `[A48213](order_number)`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.enums import ReviewStatus
from bot.storage.models import Customer, Message, TurnUnderstanding

ERASED_TEXT = "[erased]"

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
ORDER_NUMBER = re.compile(r"(?<![\w#])(#|[Aa])?(\d{5})(?!\d)")
LONG_DIGITS = re.compile(r"(?<!\d)\d{6,}(?!\d)")
WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ'’-]*")
SENTENCE_END = re.compile(r"[.!?]\s*$")
CUES = re.compile(
    r"\b(?:my name is|name is|i am|i'm|im|this is|call me|regards|thanks|thank you|cheers|"
    r"from|signed|for|it's|its)[\s,:-]+$",
    re.IGNORECASE,
)
HERE = re.compile(r"[ ]+here\b", re.IGNORECASE)
# After these a name may be written in lower case.
STRONG_CUES = re.compile(
    r"\b(?:my name is|name is|name's|call me|regards|signed|cheers)[\s,:-]+$", re.IGNORECASE
)

FIRST_NAMES = (
    "Alex",
    "Sam",
    "Jordan",
    "Taylor",
    "Morgan",
    "Casey",
    "Robin",
    "Jamie",
    "Riley",
    "Avery",
    "Noa",
    "Elena",
    "Marta",
    "Lukas",
    "Sofia",
    "Tomas",
    "Hanna",
    "Peter",
    "Clara",
    "Omar",
)
LAST_NAMES = (
    "Rivera",
    "Novak",
    "Berg",
    "Moreau",
    "Larsen",
    "Costa",
    "Weber",
    "Quinn",
    "Haddad",
    "Kowalski",
    "Lindqvist",
    "Santos",
    "Fischer",
    "Okafor",
    "Meyer",
    "Ferreira",
    "Nilsen",
    "Horvat",
)
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
# Capitalised words that are no names.
_COMMON_CAPITALISED = """i i'm i've i'd i'll ok okay hi hello hey thanks thank please yes no dear monday tuesday
    wednesday thursday friday saturday sunday january february march april may june july
    august september october november december christmas easter black paypal visa
    mastercard amex klarna apple google dhl ups fedex gls dpd usps royal mail eu uk us usa
    europe germany france spain italy netherlands austria sweden english german french
    spanish sorry why what where when how who which can could would will is are do does
    did my the a an and or but so if it its this that there here your you we they he she
    order orders refund return delivery parcel package invoice subscription account email
    help bot human agent person support customer shop store product item size colour color
    ps btw asap fyi lol omg"""
COMMON_CAPITALISED = frozenset(_COMMON_CAPITALISED.split())


@dataclass(frozen=True)
class Example:
    intent: str
    text: str  # already anonymised
    entities: tuple[tuple[str, str], ...] = ()  # (entity, value) pairs present in `text`


def _pick(options: Sequence[str], original: str, salt: str) -> str:
    digest = hashlib.sha256(f"{salt}:{original}".encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]


def _digits(original: str, count: int, salt: str) -> str:
    digest = hashlib.sha256(f"{salt}:{original}".encode()).hexdigest()
    digits = "".join(str(int(c, 16) % 10) for c in digest)
    out = digits[:count]
    return ("1" + out[1:]) if out.startswith("0") else out  # no leading zero


def fake_email(original: str) -> str:
    first = _pick(FIRST_NAMES, original, "email-first").lower()
    last = _pick(LAST_NAMES, original, "email-last").lower()
    return f"{first}.{last}@{_pick(EMAIL_DOMAINS, original, 'email-domain')}"


def fake_order_number(original: str) -> str:
    """Same shape: the same prefix (`A`, `a`, `#` or none) and five digits, never the same."""
    match = ORDER_NUMBER.fullmatch(original)
    prefix = match.group(1) or "" if match else ""
    number = _digits(original, 5, "order")
    if number == original[-5:]:
        number = str((int(number) + 1) % 90000 + 10000)
    return f"{prefix}{number}"


def fake_name(original: str) -> str:
    pool = FIRST_NAMES if len(original) < 7 else (*FIRST_NAMES, *LAST_NAMES)
    name = _pick(pool, original.lower(), "name")
    if name.lower() == original.lower():
        name = _pick(LAST_NAMES, original.lower(), "name-again")
    return name.upper() if original.isupper() and len(original) > 1 else name


def name_tokens(names: Iterable[str | None]) -> frozenset[str]:
    """Lower-cased tokens of customer names (2+ letters)."""
    return frozenset(
        token.lower() for name in names if name for token in WORD.findall(name) if len(token) > 1
    )


class Anonymiser:
    """Replaces personal data in texts; `known_names`: tokens of customer names;
    `vocabulary`: words the training data uses in lower case (ordinary words)."""

    def __init__(self, known_names: frozenset[str], vocabulary: frozenset[str]) -> None:
        self.known_names = known_names
        self.vocabulary = vocabulary
        self.replaced: dict[str, str] = {}
        self._name_ended = -2  # where the last name found ended

    def _is_name(self, text: str, match: re.Match[str]) -> bool:
        word = match.group(0)
        lower = word.lower().strip("'’-")
        if len(lower) < 2:
            return False
        if lower in self.known_names and (word[0].isupper() or lower not in self.vocabulary):
            return True  # a customer's name ("Will" yes, "will" no)
        before = text[: match.start()]
        ordinary = lower in COMMON_CAPITALISED or lower in self.vocabulary
        # The word right after a name is a surname unless ordinary ("Greta Holm").
        if (
            not ordinary
            and self._name_ended == match.start() - 1
            and text[match.start() - 1] == " "
        ):
            return True
        if STRONG_CUES.search(before):
            return not ordinary
        if not word[0].isupper():
            return False
        if HERE.match(text, match.end()):  # "Mirela here, ..."
            return not ordinary
        if CUES.search(before):
            return lower not in COMMON_CAPITALISED
        first_of_sentence = not before.strip() or bool(SENTENCE_END.search(before))
        return not (first_of_sentence or lower in COMMON_CAPITALISED or lower in self.vocabulary)

    def _swap(self, original: str, fake: str) -> str:
        self.replaced[original] = fake
        return fake

    def text(self, text: str) -> str:
        text = EMAIL.sub(lambda m: self._swap(m.group(0), fake_email(m.group(0))), text)
        text = ORDER_NUMBER.sub(
            lambda m: self._swap(m.group(0), fake_order_number(m.group(0))), text
        )
        text = LONG_DIGITS.sub(
            lambda m: self._swap(m.group(0), _digits(m.group(0), len(m.group(0)), "long")),
            text,
        )
        self._name_ended = -2
        # The placeholder emails are made of names: their words are not looked at again.
        emails = [found.span() for found in EMAIL.finditer(text)]

        def name(match: re.Match[str]) -> str:
            if any(start <= match.start() < end for start, end in emails):
                return match.group(0)
            if not self._is_name(text, match):
                return match.group(0)
            self._name_ended = match.end()
            return self._swap(match.group(0), fake_name(match.group(0)))

        return WORD.sub(name, text)

    def example(
        self, intent: str, text: str, entities: Sequence[Mapping[str, Any]] = ()
    ) -> Example:
        self.replaced = {}
        clean = self.text(text)
        kept: list[tuple[str, str]] = []
        for entity in entities:
            name, value = entity.get("entity"), entity.get("value")
            if not isinstance(name, str) or not isinstance(value, str) or not value:
                continue
            new_value = self.text(value) if value not in self.replaced else self.replaced[value]
            if new_value in clean:
                kept.append((name, new_value))
        return Example(intent, clean, tuple(kept))


# ---- Rasa's format -------------------------------------------------------------------------

_RASA_SYNTAX = re.compile(r"[\[\]{}]")
_ANNOTATION = re.compile(r"\[([^\]]+)\]\([^)]+\)")


def annotated(example: Example) -> str:
    """The example line with its entities in Rasa's `[value](entity)` syntax."""
    text = _RASA_SYNTAX.sub("", " ".join(example.text.split()))
    for entity, value in example.entities:
        at = text.find(value)
        if at >= 0 and "[" not in text[max(0, at - 1) : at + len(value) + 1]:
            text = f"{text[:at]}[{value}]({entity}){text[at + len(value) :]}"
    return text


def normalise(text: str) -> str:
    """As bench/nlu_eval compares texts: lower case, words and signs, annotations removed."""
    return " ".join(re.findall(r"\w+|[^\w\s]", _ANNOTATION.sub(r"\1", text).lower()))


def nlu_yaml(examples: Iterable[Example]) -> str:
    by_intent: dict[str, list[str]] = {}
    for example in examples:
        line = annotated(example)
        if line and line not in by_intent.setdefault(example.intent, []):
            by_intent[example.intent].append(line)
    document = {
        "version": "3.1",
        "nlu": [
            {"intent": intent, "examples": LiteralText("".join(f"- {t}\n" for t in lines))}
            for intent, lines in sorted(by_intent.items())
        ],
    }
    header = (
        "# Reviewed customer messages (issue #24), written by `python -m bot export-reviewed`\n"
        "# from the review inbox; personal data replaced by placeholders. Do not edit by hand:\n"
        "# the next export overwrites it.\n"
    )
    return header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


class LiteralText(str):
    """A YAML block scalar (`|`), as Rasa's own files write examples."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    LiteralText,
    lambda dumper, data: dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style="|"),
)


# ---- training and held-out texts -----------------------------------------------------------


def nlu_examples(path: Path) -> list[str]:
    """The plain texts of the examples of a Rasa NLU file."""
    texts: list[str] = []
    for item in (yaml.safe_load(path.read_text()) or {}).get("nlu", []) or []:
        if isinstance(item, dict) and isinstance(item.get("examples"), str):
            for line in item["examples"].splitlines():
                text = _ANNOTATION.sub(r"\1", line.strip().removeprefix("- ").strip())
                if text:
                    texts.append(text)
    return texts


def vocabulary(paths: Iterable[Path]) -> frozenset[str]:
    """Words the training data writes in lower case: ordinary words, not names."""
    words: set[str] = set()
    for path in paths:
        for text in nlu_examples(path):
            words.update(w for w in WORD.findall(text) if w.islower())
    return frozenset(words)


_PLACEHOLDER = re.compile(r"\{[^}]*\}")


def held_out_patterns(root: Path) -> tuple[frozenset[str], list[re.Pattern[str]]]:
    """The held-out sets (docs/benchmarks.md): exact texts of bench/nlu_eval's sets and
    patterns of the templates of bench/nlu_eval/order_numbers_heldout.yml and
    bench/conversations/heldout/*.yml (a `{placeholder}` stands for any words)."""
    texts: set[str] = set()
    templates: list[str] = []
    nlu_eval = root / "bench" / "nlu_eval"
    for name in ("test.yml", "dev.yml", "heldout_v2.yml"):
        if (nlu_eval / name).exists():
            texts.update(normalise(t) for t in nlu_examples(nlu_eval / name))
    order_numbers = nlu_eval / "order_numbers_heldout.yml"
    if order_numbers.exists():
        data = yaml.safe_load(order_numbers.read_text()) or {}
        for lines in (data.get("templates") or {}).values():
            templates.extend(str(line) for line in lines or [])
    for path in sorted((root / "bench" / "conversations" / "heldout").glob("*.yml")):
        templates.extend(_says(yaml.safe_load(path.read_text())))
    patterns = []
    for template in templates:
        if not _PLACEHOLDER.sub("", template).strip():
            continue
        patterns.append(re.compile("^" + _template_regex(template) + "$"))
    return frozenset(texts), patterns


# What a template's placeholder stands for, in `normalise`d text.
_ORDER_FILLED = r"(?:# )?[a]?\d{5}"
_EMAIL_FILLED = r"[\w.+-]+(?: [.+-] [\w.+-]+| [\w.+-]+)* @ \w+(?: \. \w+)+"


def _template_regex(template: str) -> str:
    """A regex over `normalise`d text for a template: `{order}`, `{o1}` an order number,
    `{o1.digits}` five digits, `{c.email}` an email, `{run}` a word."""
    out = []
    for piece in re.split(r"(\{[^}]*\})", template):
        if not piece.strip():
            continue
        if piece.startswith("{"):
            name = piece[1:-1]
            if name.endswith("digits"):
                out.append(r"\d{5}")
            elif name == "order" or re.fullmatch(r"o\d+", name):
                out.append(_ORDER_FILLED)
            elif name.endswith("email"):
                out.append(_EMAIL_FILLED)
            else:
                out.append(r"\w+")
        else:
            out.append(re.escape(normalise(piece)).replace(r"\ ", " "))
    return r"\s*".join(out)


def _says(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["say"]] if isinstance(node.get("say"), str) else []
        return found + [s for key, v in node.items() if key != "say" for s in _says(v)]
    if isinstance(node, list):
        return [s for item in node for s in _says(item)]
    return []


def is_held_out(text: str, held_out: tuple[frozenset[str], list[re.Pattern[str]]]) -> bool:
    plain = normalise(text)
    exact, patterns = held_out
    return plain in exact or any(p.match(plain) for p in patterns)


# ---- the export ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    written: int
    reviewed: int
    held_out: int  # left out: a held-out text
    known: int  # left out: already in the training data
    path: Path


@dataclass(frozen=True)
class Reviewed:
    intent: str
    text: str
    entities: list[dict[str, Any]]


async def reviewed_turns(session: AsyncSession) -> tuple[list[Reviewed], frozenset[str]]:
    """The confirmed and corrected turns (oldest first), and the tokens of customer names."""
    rows = (
        await session.execute(
            select(TurnUnderstanding, Message.text)
            .join(Message, Message.id == TurnUnderstanding.message_id)
            .where(
                TurnUnderstanding.review_status.in_(
                    [ReviewStatus.confirmed, ReviewStatus.corrected]
                ),
                TurnUnderstanding.reviewed_intent.is_not(None),
                Message.text != ERASED_TEXT,
            )
            .order_by(TurnUnderstanding.message_id)
        )
    ).all()
    turns = [
        Reviewed(
            str(row.reviewed_intent),
            text,
            list(
                row.reviewed_entities
                if row.review_status is ReviewStatus.corrected
                else (row.reviewed_entities or row.entities or [])
            ),
        )
        for row, text in rows
    ]
    return turns, name_tokens(await session.scalars(select(Customer.name)))


def write_export(
    turns: Sequence[Reviewed], names: frozenset[str], root: Path, out: Path
) -> ExportResult:
    """Write the reviewed turns to `out` (Rasa NLU YAML), anonymised; held-out texts and
    texts the training data (root/data/nlu) already holds are left out."""
    training = [p for p in sorted((root / "data" / "nlu").glob("*.yml")) if p != out]
    known = {normalise(t) for p in training for t in nlu_examples(p)}
    anonymiser = Anonymiser(names, vocabulary(training))
    held_out = held_out_patterns(root)
    examples: list[Example] = []
    skipped_held_out = skipped_known = 0
    for turn in turns:
        example = anonymiser.example(turn.intent, turn.text, turn.entities)
        if is_held_out(turn.text, held_out) or is_held_out(example.text, held_out):
            skipped_held_out += 1
        elif normalise(example.text) in known:
            skipped_known += 1
        else:
            examples.append(example)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(nlu_yaml(examples))
    return ExportResult(len(examples), len(turns), skipped_held_out, skipped_known, out)
