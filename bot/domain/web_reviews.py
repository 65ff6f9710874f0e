"""Feedback from the open web (issue #23): review-site, review-app and social exports.

Four formats (what each reads: docs/web-reviews.md; sample files in tests/data/imports/):

* `trustpilot` — Trustpilot Business's review CSV export.
* `judgeme` — Judge.me's (Shopify product reviews) review CSV export.
* `google` — Google Business Profile reviews JSON, as `accounts.locations.reviews.list`
  returns them (`{"reviews": [...]}`, or a bare list of review objects).
* `social` — a generic social-mention CSV: platform, url, author, time, text.

Every review is one item keyed by platform and the platform's review id
(`web:<platform>:<id>`): importing again adds nothing, and a review edited on the platform
(other stars, text or title) is updated in place. Stars are CSAT answers (1 to 5 stars = CSAT
1 to 5); the text is a `comment` row with sentiment and themes as in the chat.

Who wrote it: a known customer when the export names an order number (that order's
lifecycle and its stage) or an email of a customer; otherwise a `Reviewer` per channel and
handle, and the feedback has no customer, lifecycle or stage (SPEC §3). A detractor (CSAT ≤
2, or a social post with strongly negative sentiment) opens a follow-up marked "reply
publicly" with the review's URL.

Imports stream the file and work in batches of `BATCH` reviews, one transaction each (a
batch that fails is retried one review at a time, so one bad row never loses the others).
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import enum
import hashlib
import io
import json
import multiprocessing
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any, cast

from sqlalchemy import Table, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from bot.domain import analysis, closed_loop
from bot.domain import lifecycle as lifecycles
from bot.domain.enums import Channel, FeedbackKind, FeedbackSource
from bot.domain.errors import DomainError, InvalidInput
from bot.domain.feedback import MAX_FEEDBACK_CHARS
from bot.storage import rollup
from bot.storage.models import Customer, Escalation, Feedback, Lifecycle, Order, Reviewer, utcnow

BATCH = 2000
MAX_FIELD_CHARS = 100_000
REPLY_PUBLICLY = "Reply publicly"
GOOGLE_STARS = {"ONE": 1, "TWO": 2, "THREE": 3, "FOUR": 4, "FIVE": 5}


@dataclass(frozen=True)
class WebReview:
    """One review or post as read from an export, before it is tied to anyone."""

    platform: str  # trustpilot | judgeme | google | the social network's name
    channel: Channel
    review_id: str
    occurred_at: datetime
    stars: int | None
    text: str | None
    author: str | None = None
    email: str | None = None
    order_number: str | None = None
    url: str | None = None

    @property
    def key(self) -> str:
        return f"web:{self.platform}:{self.review_id}"[:190]

    @property
    def content_hash(self) -> str:
        content = json.dumps(
            [self.stars, self.text, self.occurred_at.isoformat(), self.url, self.author]
        )
        return hashlib.sha256(content.encode()).hexdigest()


@dataclass(frozen=True)
class Format:
    name: str
    label: str
    required: tuple[str, ...]  # columns (CSV) or fields (JSON) that must be there
    optional: tuple[str, ...]
    json: bool = False


FORMATS: dict[str, Format] = {
    "trustpilot": Format(
        "trustpilot",
        "Trustpilot review export (CSV)",
        ("Review ID", "Review Created (UTC)", "Review Stars"),
        (
            "Review Title",
            "Review Content",
            "Review Consumer User ID",
            "Consumer Name",
            "Consumer Email",
            "Reference Id",
            "Review Language",
            "Source Of Review",
        ),
    ),
    "judgeme": Format(
        "judgeme",
        "Judge.me review export (CSV)",
        ("rating", "review_date", "reviewer_name"),
        (
            "id",
            "title",
            "body",
            "reviewer_email",
            "product_handle",
            "product_id",
            "product_url",
            "source",
            "curated",
            "reply",
        ),
    ),
    "google": Format(
        "google",
        "Google Business Profile reviews (JSON)",
        ("reviewId", "starRating", "createTime", "reviewer"),
        ("comment", "updateTime", "name", "reviewReply"),
        json=True,
    ),
    "social": Format(
        "social",
        "Social mentions (CSV)",
        ("platform", "url", "author", "time", "text"),
        ("id", "email", "order_number"),
    ),
}


def get_format(name: str | None) -> Format:
    found = FORMATS.get((name or "").strip().lower())
    if found is None:
        known = ", ".join(["product", *FORMATS])
        raise InvalidInput(f"unknown format '{name}' (known: {known})", code="unknown_format")
    return found


# ---- reading the files --------------------------------------------------------------------


def open_text(raw: IO[bytes]) -> IO[str]:
    """The stream as text: UTF-8 (with or without a BOM) or UTF-16 with a BOM."""
    head = raw.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    rest = io.BufferedReader(_Prefixed(head, raw))
    return io.TextIOWrapper(rest, encoding=encoding, newline="", errors="strict")


class _Prefixed(io.RawIOBase):
    """A byte stream with the bytes already read put back in front."""

    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        self._head, self._raw = head, raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def read_csv(text: IO[str], fmt: Format) -> Iterator[tuple[int, dict[str, str] | str]]:
    """(first line of the record, row or problem); a missing column is InvalidInput."""
    first = text.readline()
    if not first.strip():
        raise InvalidInput("the file is empty (no header line)", code="invalid_import")
    delimiter = _delimiter(first)
    header = next(csv.reader([first], delimiter=delimiter))
    header = [h.strip() for h in header]
    missing = [c for c in fmt.required if c not in header]
    if missing:
        raise InvalidInput(
            f"missing column '{missing[0]}' for format {fmt.name} "
            f"(needs: {', '.join(fmt.required)})",
            code="missing_column",
        )
    csv.field_size_limit(MAX_FIELD_CHARS)
    # strict: a quote left open is an error at the end of the file, not a silent merge of
    # every following line into one text.
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    last = 1
    while True:
        start = last + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            last = reader.line_num + 1
            hint = " (a quote left open?)" if "end of data" in str(exc) else ""
            yield start, f"unreadable CSV: {exc}{hint}"
            continue
        last = reader.line_num + 1
        if not any(v.strip() for v in values):
            continue  # blank line
        if len(values) != len(header):
            more = "more" if len(values) > len(header) else "fewer"
            hint = " (an unclosed quote?)" if more == "fewer" and start != last else ""
            yield start, f"{more} values than columns ({len(values)} for {len(header)}){hint}"
            continue
        yield start, {h: v.strip() for h, v in zip(header, values, strict=True)}


def parse_time(value: str, column: str) -> datetime:
    """ISO 8601; without a zone (and with a trailing ' UTC') the time is UTC, as the
    exports write it; a date alone is midnight UTC."""
    raw = value.strip()
    if raw.upper().endswith(" UTC"):
        raw = raw[:-4]
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"'{column}' is not a date-time: {value[:40]!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    parsed = parsed.astimezone(timezone.utc)
    if parsed > utcnow():
        raise InvalidInput(f"'{column}' lies in the future")
    return parsed


def _stars(value: str, column: str) -> int:
    raw = value.strip()
    try:
        stars = int(float(raw)) if raw.replace(".", "", 1).isdigit() else -1
    except ValueError:
        stars = -1
    if not 1 <= stars <= 5 or float(raw) != stars:
        raise InvalidInput(f"'{column}' must be 1 to 5 stars, not {raw[:20]!r}")
    return stars


def _text(*parts: str | None) -> str | None:
    text = "\n\n".join(p.strip() for p in parts if p and p.strip())
    if len(text) > MAX_FEEDBACK_CHARS:
        text = text[: MAX_FEEDBACK_CHARS - 1] + "…"
    return text or None


def _id(value: str | None, column: str) -> str:
    if not value or not value.strip():
        raise InvalidInput(f"'{column}' is empty")
    return value.strip()[:150]


def _opt(row: dict[str, str], column: str, max_len: int = 200) -> str | None:
    value = (row.get(column) or "").strip()
    return value[:max_len] or None


def _url(value: str | None, column: str) -> str | None:
    if not value:
        return None
    if not value.startswith(("https://", "http://")) or len(value) > 2000:
        raise InvalidInput(f"'{column}' must be an http(s) URL")
    return value


def trustpilot(row: dict[str, str]) -> WebReview:
    review_id = _id(row.get("Review ID"), "Review ID")
    return WebReview(
        platform="trustpilot",
        channel=Channel.review_site,
        review_id=review_id,
        occurred_at=parse_time(row["Review Created (UTC)"], "Review Created (UTC)"),
        stars=_stars(row["Review Stars"], "Review Stars"),
        text=_text(row.get("Review Title"), row.get("Review Content")),
        author=_opt(row, "Review Consumer User ID") or _opt(row, "Consumer Name"),
        email=_opt(row, "Consumer Email", 254),
        order_number=_opt(row, "Reference Id", 32),
        url=f"https://www.trustpilot.com/reviews/{review_id}",
    )


def judgeme(row: dict[str, str]) -> WebReview:
    occurred = parse_time(row["review_date"], "review_date")
    author = _opt(row, "reviewer_name")
    email = _opt(row, "reviewer_email", 254)
    if not author and not email:
        raise InvalidInput("'reviewer_name' is empty")
    review_id = _opt(row, "id", 150)
    if review_id is None:
        # The export has no review id: who, about what, when (stable when the text is edited).
        ident = json.dumps(
            [(email or author or "").lower(), row.get("product_handle") or "", occurred.isoformat()]
        )
        review_id = "h" + hashlib.sha256(ident.encode()).hexdigest()[:32]
    return WebReview(
        platform="judgeme",
        channel=Channel.storefront,
        review_id=review_id,
        occurred_at=occurred,
        stars=_stars(row["rating"], "rating"),
        text=_text(row.get("title"), row.get("body")),
        author=email or author,
        email=email,
        url=_url(_opt(row, "product_url", 2000), "product_url"),
    )


def social(row: dict[str, str]) -> WebReview:
    platform = (row.get("platform") or "").strip().lower()
    if not platform:
        raise InvalidInput("'platform' is empty")
    url = _url(_opt(row, "url", 2000), "url")
    if url is None:
        raise InvalidInput("'url' is empty")
    text = _text(row.get("text"))
    if text is None:
        raise InvalidInput("'text' is empty")
    return WebReview(
        platform=platform[:32],
        channel=Channel.social,
        review_id=_opt(row, "id", 150) or url,
        occurred_at=parse_time(row["time"], "time"),
        stars=None,
        text=text,
        author=_id(row.get("author"), "author"),
        email=_opt(row, "email", 254),
        order_number=_opt(row, "order_number", 32),
        url=url,
    )


def google(obj: Any) -> WebReview:
    if not isinstance(obj, dict):
        raise InvalidInput("a review must be a JSON object")
    for name in FORMATS["google"].required:
        if name not in obj:
            raise InvalidInput(f"missing field '{name}'", code="missing_column")
    stars = GOOGLE_STARS.get(str(obj["starRating"]))
    if stars is None:
        raise InvalidInput(f"'starRating' must be ONE to FIVE, not {str(obj['starRating'])[:30]!r}")
    reviewer = obj["reviewer"] if isinstance(obj["reviewer"], dict) else {}
    anonymous = bool(reviewer.get("isAnonymous")) or not reviewer.get("displayName")
    comment = obj.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise InvalidInput("'comment' must be a string")
    if not isinstance(obj["createTime"], str):
        raise InvalidInput("'createTime' must be a string")
    return WebReview(
        platform="google",
        channel=Channel.review_site,
        review_id=_id(str(obj["reviewId"]), "reviewId"),
        occurred_at=parse_time(obj["createTime"], "createTime"),
        stars=stars,
        text=_text(comment),
        author="anonymous" if anonymous else str(reviewer["displayName"])[:200],
        url=None,  # the API gives no public link per review
    )


_ROW_PARSERS = {"trustpilot": trustpilot, "judgeme": judgeme, "social": social}


def read_reviews(raw: IO[bytes], fmt: Format) -> Iterator[tuple[int, WebReview | str]]:
    """(line or review number, review or problem) for every record of the export."""
    if fmt.json:
        yield from _read_google(raw)
        return
    try:
        text = open_text(raw)
        parse = _ROW_PARSERS[fmt.name]
        for line, row in read_csv(text, fmt):
            if isinstance(row, str):
                yield line, row
                continue
            try:
                yield line, parse(row)
            except DomainError as exc:
                yield line, exc.message
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            "the file is not UTF-8 text (or UTF-16 with a byte-order mark)", code="invalid_import"
        ) from exc


def _read_google(raw: IO[bytes]) -> Iterator[tuple[int, WebReview | str]]:
    data = raw.read()
    try:
        body = json.loads(
            data.decode("utf-8-sig")
            if not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
            else data.decode("utf-16")
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"the file is not JSON: {exc}", code="invalid_import") from exc
    reviews = body.get("reviews") if isinstance(body, dict) else body
    if not isinstance(reviews, list):
        raise InvalidInput("missing field 'reviews' (a list of reviews)", code="missing_column")
    for number, obj in enumerate(reviews, start=1):
        try:
            yield number, google(obj)
        except DomainError as exc:
            yield number, exc.message


# ---- storing ------------------------------------------------------------------------------


@dataclass
class ImportReport:
    imported: int = 0
    updated: int = 0
    duplicates: int = 0
    escalations: int = 0
    unattributed: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    unit: str = "line"  # "review" for JSON (its position in the list)

    def as_json(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "updated": self.updated,
            "duplicates": self.duplicates,
            "unattributed": self.unattributed,
            "escalations": self.escalations,
            "errors": [{self.unit: n, "message": m} for n, m in self.errors],
        }


@dataclass
class _Target:
    customer_id: int | None
    lifecycle: Lifecycle | None
    reviewer_id: int | None
    order_id: int | None


def _normal_order(number: str) -> str:
    return number.strip().lstrip("#").upper()


async def _targets(session: AsyncSession, reviews: list[WebReview]) -> list[_Target]:
    """Customer and lifecycle by order number, else by email; else a reviewer."""
    numbers = {_normal_order(r.order_number) for r in reviews if r.order_number}
    orders: dict[str, Order] = {}
    lifecycle_of_order: dict[int, Lifecycle] = {}
    if numbers:
        for found in await session.scalars(
            select(Order).where(func.upper(Order.number).in_(numbers))
        ):
            orders[found.number.upper()] = found
        if orders:
            ids = [o.id for o in orders.values()]
            for journey in await session.scalars(
                select(Lifecycle).where(Lifecycle.order_id.in_(ids))
            ):
                assert journey.order_id is not None
                lifecycle_of_order[journey.order_id] = journey
    emails = {r.email.lower() for r in reviews if r.email}
    customers: dict[str, Customer] = {}
    if emails:
        for known in await session.scalars(
            select(Customer)
            .where(func.lower(Customer.email).in_(emails), Customer.is_anonymous.is_(False))
            .order_by(Customer.id.desc())
        ):
            customers[(known.email or "").lower()] = known  # the oldest wins
    journeys = await _journeys(
        session, {c.id for c in customers.values()} | {o.customer_id for o in orders.values()}
    )
    targets: list[_Target | None] = []
    wanted: dict[tuple[Channel, str], str | None] = {}
    for review in reviews:
        order = orders.get(_normal_order(review.order_number)) if review.order_number else None
        if order is not None:
            lc = lifecycle_of_order.get(order.id)
            if lc is None:
                lc = await _journey_at(session, journeys, order.customer_id, review.occurred_at)
            targets.append(_Target(order.customer_id, lc, None, order.id))
            continue
        customer = customers.get(review.email.lower()) if review.email else None
        if customer is not None:
            lc = await _journey_at(session, journeys, customer.id, review.occurred_at)
            targets.append(_Target(customer.id, lc, None, None))
            continue
        targets.append(None)
        wanted.setdefault((review.channel, _handle(review)), review.email)
    reviewer_ids = await _reviewers(session, wanted)
    return [
        t if t is not None else _Target(None, None, reviewer_ids[(r.channel, _handle(r))], None)
        for r, t in zip(reviews, targets, strict=True)
    ]


async def _journeys(session: AsyncSession, customer_ids: set[int]) -> dict[int, list[Lifecycle]]:
    """The lifecycles of these customers, newest first (one query per batch)."""
    found: dict[int, list[Lifecycle]] = {cid: [] for cid in customer_ids}
    if customer_ids:
        for journey in await session.scalars(
            select(Lifecycle)
            .where(Lifecycle.customer_id.in_(customer_ids))
            .order_by(Lifecycle.opened_at.desc(), Lifecycle.id.desc())
        ):
            found[journey.customer_id].append(journey)
    return found


async def _journey_at(
    session: AsyncSession, journeys: dict[int, list[Lifecycle]], customer_id: int, at: datetime
) -> Lifecycle:
    """intake.lifecycle_at from the loaded lifecycles: the newest opened at or before `at`
    and not closed before it, else the current one (opened in discovery if none is open)."""
    rows = journeys[customer_id]
    for journey in rows:
        if journey.opened_at <= at and (journey.closed_at is None or journey.closed_at >= at):
            return journey
    for journey in rows:
        if journey.closed_at is None:
            return journey
    customer = await session.get(Customer, customer_id)
    assert customer is not None
    opened = await lifecycles.current_lifecycle(session, customer)
    rows.insert(0, opened)
    return opened


def _handle(review: WebReview) -> str:
    return (review.author or review.email or "anonymous").strip()[:200]


async def _reviewers(
    session: AsyncSession, wanted: dict[tuple[Channel, str], str | None]
) -> dict[tuple[Channel, str], int]:
    found: dict[tuple[Channel, str], int] = {}
    if not wanted:
        return found
    by_channel: dict[Channel, set[str]] = {}
    for channel, handle in wanted:
        by_channel.setdefault(channel, set()).add(handle)
    for channel, handles in by_channel.items():
        rows = await session.execute(
            select(Reviewer.id, Reviewer.handle, Reviewer.email).where(
                Reviewer.channel == channel, Reviewer.handle.in_(handles)
            )
        )
        for rid, handle, email in rows:
            found[(channel, handle)] = rid
            new_email = wanted.get((channel, handle))
            if new_email and not email:
                await session.execute(
                    update(Reviewer).where(Reviewer.id == rid).values(email=new_email)
                )
    missing = [
        {"channel": c, "handle": h, "email": e, "created_at": utcnow()}
        for (c, h), e in wanted.items()
        if (c, h) not in found
    ]
    if missing and session.get_bind().dialect.name == "postgresql":
        # Two batches in flight may meet the same new reviewer: the later waits for the
        # earlier's commit and then takes its row (sorted: both lock in the same order).
        keys = sorted((c, h) for c, h in wanted if (c, h) not in found)
        missing.sort(key=lambda r: (str(r["channel"]), str(r["handle"])))
        await session.execute(
            pg_insert(Reviewer).on_conflict_do_nothing(index_elements=["channel", "handle"]),
            missing,
        )
        for channel in {c for c, _ in keys}:
            new_handles = [h for c, h in keys if c is channel]
            rows = await session.execute(
                select(Reviewer.id, Reviewer.handle).where(
                    Reviewer.channel == channel, Reviewer.handle.in_(new_handles)
                )
            )
            for rid, handle in rows:
                found[(channel, handle)] = rid
    elif missing:
        rows = await session.execute(
            insert(Reviewer).returning(Reviewer.id, Reviewer.channel, Reviewer.handle), missing
        )
        for rid, channel, handle in rows:
            found[(channel, handle)] = rid
    return found


Scored = tuple[float | None, list[str]]  # sentiment and themes of a review's text


def _rows_of(review: WebReview, target: _Target, scored: Scored | None) -> list[dict[str, Any]]:
    """The feedback rows of one review: the stars (csat) and/or the text (comment); the
    text's sentiment and themes as analysed beforehand (`scored`), else analysed here."""
    lc = target.lifecycle
    common = {
        "customer_id": target.customer_id,
        "lifecycle_id": lc.id if lc else None,
        "stage": lc.stage if lc else None,
        "channel": review.channel,
        "source": FeedbackSource.imported,
        "order_id": target.order_id or (lc.order_id if lc else None),
        "reviewer_id": target.reviewer_id,
        "platform": review.platform,
        "source_url": review.url,
        "created_at": review.occurred_at,
        "content_hash": review.content_hash,
    }
    rows: list[dict[str, Any]] = []
    if review.stars is not None:
        rows.append(
            {
                **common,
                "idempotency_key": review.key,
                "kind": FeedbackKind.csat,
                "score": review.stars,
                "text": None,
                "sentiment": None,
                "themes": [],
            }
        )
    if review.text:
        key = f"{review.key}:comment" if review.stars is not None else review.key
        sentiment, themes = scored or analysis.analyse([review.text])[0]
        rows.append(
            {
                **common,
                "idempotency_key": key,
                "kind": FeedbackKind.comment,
                "score": None,
                "text": review.text,
                "sentiment": sentiment,
                "themes": themes,
            }
        )
    return rows


_COPIED = (
    "idempotency_key",
    "customer_id",
    "lifecycle_id",
    "stage",
    "channel",
    "source",
    "kind",
    "score",
    "text",
    "sentiment",
    "themes",
    "order_id",
    "reviewer_id",
    "platform",
    "source_url",
    "created_at",
    "content_hash",
)


async def _copy_rows(connection: AsyncConnection, rows: list[dict[str, Any]]) -> dict[str, int]:
    """PostgreSQL: the feedback rows by COPY (binary; no statement with 17 parameters a row
    to encode, parse and plan), in this transaction, their ids taken from the table's
    sequence first. Constraints, foreign keys and row triggers apply as for INSERT.
    Returns the id of each idempotency key."""
    found = await connection.execute(
        text(
            "SELECT nextval(pg_get_serial_sequence('feedback', 'id')) FROM generate_series(1, :n)"
        ),
        {"n": len(rows)},
    )
    ids = [int(i) for i in found.scalars()]
    records = [
        (fid, *(_copy_value(row[name]) for name in _COPIED))
        for fid, row in zip(ids, rows, strict=True)
    ]
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection  # asyncpg's connection, in this transaction
    assert driver is not None
    await driver.copy_records_to_table("feedback", records=records, columns=["id", *_COPIED])
    return {row["idempotency_key"]: fid for fid, row in zip(ids, rows, strict=True)}


def _copy_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):  # themes: the JSON column takes its text
        return json.dumps(value)
    return value


def is_detractor(review: WebReview, sentiment: float | None) -> bool:
    if review.stars is not None:
        return closed_loop.is_detractor(FeedbackKind.csat, review.stars, sentiment)
    # A post without stars: like a complaint, strongly negative text.
    return closed_loop.is_detractor(FeedbackKind.complaint, None, sentiment)


async def _store_batch(
    session: AsyncSession,
    reviews: list[WebReview],
    report: ImportReport,
    due_hours: int,
    scores: dict[str, Scored],
) -> list[Escalation]:
    keys = [r.key for r in reviews]
    found = await session.execute(
        select(Feedback.idempotency_key, Feedback.content_hash).where(
            Feedback.idempotency_key.in_(keys)
        )
    )
    existing: dict[str, str | None] = {key: digest for key, digest in found}
    fresh = [r for r in reviews if r.key not in existing]
    edited = [r for r in reviews if r.key in existing and existing[r.key] != r.content_hash]
    report.duplicates += len(reviews) - len(fresh) - len(edited)
    escalations: list[Escalation] = []
    if fresh:
        targets = await _targets(session, fresh)
        rows = [
            row
            for r, t in zip(fresh, targets, strict=True)
            for row in _rows_of(r, t, scores.get(r.key))
        ]
        connection = await session.connection()
        postgres = connection.dialect.name == "postgresql"
        if postgres:  # the rollups get the batch's totals at once (bot/storage/rollup.py)
            await connection.execute(text(f"SET LOCAL {rollup.DEFERRED_SETTING} = 'on'"))
            ids = await _copy_rows(connection, rows)
        else:
            # Core executemany: SQLAlchemy's "insertmanyvalues" sends few multi-row INSERTs
            # from one cached compilation (the ORM's bulk path sent a row at a time with
            # RETURNING; .values(rows) recompiled a huge statement per batch).
            table = cast(Table, Feedback.__table__)
            inserted = await connection.execute(
                insert(table).returning(table.c.id, table.c.idempotency_key), rows
            )
            ids = {key: fid for fid, key in inserted.all()}
        if postgres:
            await connection.execute(text(f"SET LOCAL {rollup.DEFERRED_SETTING} = 'off'"))
            for statement in rollup.delta_ddl("postgresql"):
                await connection.execute(text(statement), {"ids": list(ids.values())})
        report.imported += len(fresh)
        report.unattributed += sum(t.customer_id is None for t in targets)
        by_key = {row["idempotency_key"]: row for row in rows}
        now = utcnow()
        for review in fresh:
            comment = by_key.get(f"{review.key}:comment") or by_key[review.key]
            if is_detractor(review, comment["sentiment"] if review.text else None):
                first = by_key[review.key]
                stored = Feedback(  # transient: what the follow-up's summary needs
                    id=ids[review.key],
                    customer_id=first["customer_id"],
                    channel=first["channel"],
                    kind=first["kind"],
                    score=first["score"],
                    text=first["text"],
                )
                escalations.append(_follow_up(stored, review, due_hours, now))
        session.add_all(escalations)
        await session.flush()
    for review in edited:
        await _update(session, review, scores.get(review.key))
        report.updated += 1
    report.escalations += len(escalations)
    return escalations


def _follow_up(feedback: Feedback, review: WebReview, due_hours: int, now: datetime) -> Escalation:
    escalation = closed_loop.follow_up(
        feedback, due_hours=due_hours, comment=review.text if review.stars else None, now=now
    )
    where = f" {review.url}" if review.url else f" on {review.platform}"
    escalation.summary = f"{REPLY_PUBLICLY}{where} — {escalation.summary}"
    return escalation


async def _update(session: AsyncSession, review: WebReview, scored: Scored | None) -> None:
    """An edited review: new stars, text and URL in place (the row ids stay, so follow-ups
    and insight links keep pointing at them); a comment row added or removed as needed."""
    keys = [review.key, f"{review.key}:comment"]
    old = {
        row.idempotency_key: row
        for row in await session.scalars(select(Feedback).where(Feedback.idempotency_key.in_(keys)))
    }
    first = old[review.key]
    lifecycle = None
    if first.lifecycle_id is not None:
        lifecycle = await session.get(Lifecycle, first.lifecycle_id)
    target = _Target(first.customer_id, lifecycle, first.reviewer_id, first.order_id)
    wanted = {row["idempotency_key"]: row for row in _rows_of(review, target, scored)}
    for key, row in old.items():
        values = wanted.get(key)
        if values is None:
            await session.delete(row)  # the text was removed on the platform
            continue
        for name in (
            "kind",
            "score",
            "text",
            "sentiment",
            "themes",
            "source_url",
            "content_hash",
            "created_at",
        ):
            setattr(row, name, values[name])
    for key, values in wanted.items():
        if key not in old:
            session.add(Feedback(**values))
    await session.flush()


class _Analyst:
    """Sentiment and themes of a batch's texts. A full batch (a large import) goes to one
    worker process, so VADER runs on the other core while this process and the database
    write the batch before; a small import is analysed here. (`spawn`: a script of its own
    that imports this way must guard its entry point with `if __name__ == "__main__"`;
    `python -m bot`, the web service and pytest do.)"""

    def __init__(self, parallel: bool) -> None:
        self._parallel = parallel
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, reviews: list[WebReview]) -> asyncio.Future[dict[str, Scored]]:
        loop = asyncio.get_running_loop()
        keys = [r.key for r in reviews]
        texts: list[str | None] = [r.text for r in reviews]
        if self._pool is None and self._parallel and len(reviews) >= BATCH // 2:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        if self._pool is None:
            done: asyncio.Future[dict[str, Scored]] = loop.create_future()
            done.set_result(dict(zip(keys, analysis.analyse(texts), strict=True)))
            return done

        async def remote(pool: ProcessPoolExecutor) -> dict[str, Scored]:
            try:
                scored = await loop.run_in_executor(pool, analysis.analyse, texts)
            except BrokenProcessPool:  # the worker died: do it here
                scored = analysis.analyse(texts)
            return dict(zip(keys, scored, strict=True))

        return asyncio.ensure_future(remote(self._pool))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


async def _needing_work(
    sessions: async_sessionmaker[AsyncSession], reviews: list[WebReview]
) -> list[WebReview]:
    """The reviews that are new or edited (their stored content hash differs)."""
    async with sessions() as session:
        found = await session.execute(
            select(Feedback.idempotency_key, Feedback.content_hash).where(
                Feedback.idempotency_key.in_([r.key for r in reviews])
            )
        )
        stored: dict[str, str | None] = {key: digest for key, digest in found}
    return [r for r in reviews if r.key not in stored or stored[r.key] != r.content_hash]


async def import_reviews(
    sessions: async_sessionmaker[AsyncSession],
    records: Iterable[tuple[int, WebReview | str]],
    *,
    due_hours: int,
    unit: str = "line",
) -> tuple[ImportReport, list[int]]:
    """Store every readable review; the report and the ids of the follow-ups opened.

    Batches of BATCH reviews, written one after another in file order, one transaction
    each (a batch that fails is written again one review at a time). A batch whose reviews
    are all stored and unchanged is only counted. On PostgreSQL the import is a pipeline:
    while one batch is written, the next is read, checked against the database and its
    texts analysed in a worker process (`_Analyst`)."""
    report = ImportReport(unit=unit)
    escalation_ids: list[int] = []  # ids only: an import may open thousands
    bind = sessions.kw.get("bind")
    pipelined = bind is not None and bind.dialect.name == "postgresql"
    analyst = _Analyst(parallel=pipelined)
    batch: list[tuple[int, WebReview]] = []
    batch_keys: set[str] = set()
    writing: asyncio.Task[None] | None = None
    writing_keys: set[str] = set()

    async def submit() -> None:
        nonlocal writing, writing_keys
        items, keys = list(batch), set(batch_keys)
        batch.clear()
        batch_keys.clear()
        if writing is not None and (not pipelined or keys & writing_keys):
            await writing  # one database writer; a review edited in this batch: that one first
            writing = None
        todo = set(map(id, await _needing_work(sessions, [r for _, r in items])))
        report.duplicates += sum(id(r) not in todo for _, r in items)
        items = [(line, r) for line, r in items if id(r) in todo]
        if not items:
            return
        scores = analyst.submit([r for _, r in items if r.text])
        if writing is not None:
            await writing
        writing, writing_keys = asyncio.create_task(stored(items, scores)), keys

    async def stored(
        items: list[tuple[int, WebReview]], scores: asyncio.Future[dict[str, Scored]]
    ) -> None:
        scored = await scores
        try:
            await store([r for _, r in items], scored)
        except Exception:
            for line, review in items:  # one at a time: report the one that fails
                try:
                    await store([review], scored)
                except DomainError as exc:
                    report.errors.append((line, exc.message))
                except Exception as exc:  # a database refusal of this one review
                    report.errors.append((line, f"not stored: {type(exc).__name__}"))

    async def store(reviews: list[WebReview], scored: dict[str, Scored]) -> None:
        counts = ImportReport()
        async with sessions() as session, session.begin():
            opened = await _store_batch(session, reviews, counts, due_hours, scored)
        escalation_ids.extend(e.id for e in opened)  # counted only once committed
        for name in ("imported", "updated", "duplicates", "escalations", "unattributed"):
            setattr(report, name, getattr(report, name) + getattr(counts, name))

    try:
        for line, record in records:
            if isinstance(record, str):
                report.errors.append((line, record))
                continue
            if record.key in batch_keys:  # the same review twice in a batch: the earlier
                await submit()  # first, so the later is a duplicate or an edit of it
            batch.append((line, record))
            batch_keys.add(record.key)
            if len(batch) >= BATCH:
                await submit()
            elif writing is not None and len(batch) % 50 == 0:
                await asyncio.sleep(0)  # let the batch being written send its next statement
        if batch:
            await submit()
    finally:
        if writing is not None:  # a refused file: let the batch in hand finish
            await asyncio.wait([writing])
        analyst.close()
    report.errors.sort(key=lambda e: e[0])
    return report, escalation_ids
