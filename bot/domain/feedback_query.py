"""Which feedback rows a dashboard question is about: date range (in a time zone) + filters.

`DateRange` turns calendar dates in an IANA time zone into UTC instants; `FeedbackFilter`
turns the explorer's filters into SQL conditions shared by metrics, journey, the comment
explorer and the export. `parse_filter` validates raw query parameters (every problem is
an `InvalidInput` naming the parameter).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    and_,
    case,
    cast,
    exists,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.domain.analysis import NEGATIVE, THEME_KEYWORDS
from bot.domain.enums import AcquisitionSource, Channel, FeedbackKind, FeedbackSource, Stage
from bot.domain.errors import InvalidInput
from bot.storage.models import (
    Customer,
    Feedback,
    FeedbackDaily,
    Lifecycle,
    Order,
    OrderItem,
    Reviewer,
    SurveyDispatch,
)
from bot.storage.rollup import UNATTRIBUTED

MAX_RANGE_DAYS = 3 * 366
DEFAULT_RANGE_DAYS = 90
MAX_PER_PAGE = 200
COUNT_LIMIT = 10_000  # the explorer's total is exact up to here (see feedback_page)
MAX_QUERY_CHARS = 200
THEMES = tuple(THEME_KEYWORDS)
SENTIMENTS = ("positive", "neutral", "negative")
POSITIVE = 0.05  # VADER's cut-off for a positive text (NEGATIVE is -0.05)
# Feedback that came without a survey has no trigger: grouped and filtered as this key.
UNSOLICITED = "unsolicited"
UNKNOWN_SOURCE = "unknown"
# Explorer sort keys (a leading '-' sorts descending); anything else is refused.
SORT_COLUMNS: dict[str, Any] = {
    "created_at": Feedback.created_at,
    "score": Feedback.score,
    "sentiment": Feedback.sentiment,
    "id": Feedback.id,
}
SORT_KEYS = tuple(k for key in SORT_COLUMNS for k in (key, f"-{key}"))
_SKU = re.compile(r"^[A-Za-z0-9_.:-]{1,32}$")
_TRIGGER = re.compile(r"^[a-z0-9_:.-]{1,64}$")


@dataclass(frozen=True)
class DateRange:
    """Calendar days `start`..`end` (both included) in time zone `tz`.

    Day boundaries are local midnights, so a day in Europe/Berlin starts at 23:00 or 22:00
    UTC of the day before, and DST days are 23 or 25 hours long.
    """

    start: date
    end: date
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def start_utc(self) -> datetime:
        return local_midnight(self.start, self.tz)

    @property
    def end_utc(self) -> datetime:
        """The first instant after the range (exclusive upper bound)."""
        return local_midnight(self.end + timedelta(days=1), self.tz)

    def previous(self) -> DateRange:
        """The period of the same length right before this one."""
        return DateRange(
            self.start - timedelta(days=self.days), self.start - timedelta(days=1), self.tz
        )

    def as_json(self) -> dict[str, str]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(), "tz": self.tz.key}


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(timezone.utc)


@dataclass(frozen=True)
class FeedbackFilter:
    """Filters of the comment explorer; the metrics and the journey use the same ones."""

    range: DateRange
    stages: tuple[Stage, ...] = ()
    channels: tuple[Channel, ...] = ()
    kinds: tuple[FeedbackKind, ...] = ()
    sources: tuple[FeedbackSource, ...] = ()
    score_min: int | None = None
    score_max: int | None = None
    sentiment: str | None = None
    theme: str | None = None
    product: str | None = None
    acquisition: str | None = None  # an AcquisitionSource value or "unknown"
    trigger: str | None = None
    customer_id: int | None = None
    q: str | None = None

    def with_range(self, date_range: DateRange) -> FeedbackFilter:
        return replace(self, range=date_range)

    def conditions(self, dated: bool = True) -> list[ColumnElement[bool]]:
        """SQL conditions on `Feedback` (correlated EXISTS for product, trigger, acquisition);
        `dated=False`: without the date range (what to fix first dates the journeys)."""
        conditions: list[ColumnElement[bool]] = []
        if dated:
            conditions += [
                Feedback.created_at >= self.range.start_utc,
                Feedback.created_at < self.range.end_utc,
            ]
        if self.stages:
            conditions.append(Feedback.stage.in_(self.stages))
        if self.channels:
            conditions.append(Feedback.channel.in_(self.channels))
        if self.kinds:
            conditions.append(Feedback.kind.in_(self.kinds))
        if self.sources:
            conditions.append(Feedback.source.in_(self.sources))
        if self.score_min is not None:
            conditions.append(Feedback.score >= self.score_min)
        if self.score_max is not None:
            conditions.append(Feedback.score <= self.score_max)
        if self.sentiment is not None:
            conditions.append(sentiment_condition(self.sentiment))
        if self.theme is not None:
            conditions.append(theme_condition(self.theme))
        if self.customer_id is not None:
            conditions.append(Feedback.customer_id == self.customer_id)
        if self.q:
            conditions.append(Feedback.text.ilike(f"%{_escape_like(self.q)}%", escape="\\"))
        conditions.extend(self._related_conditions())
        return conditions

    def _related_conditions(self) -> list[ColumnElement[bool]]:
        # Aliases: the explorer's row query joins these tables itself (no auto-correlation).
        conditions: list[ColumnElement[bool]] = []
        if self.product is not None:
            item = aliased(OrderItem)
            conditions.append(
                exists().where(item.order_id == Feedback.order_id, item.sku == self.product)
            )
        if self.trigger == UNSOLICITED:
            conditions.append(Feedback.survey_dispatch_id.is_(None))
        elif self.trigger is not None:
            dispatch = aliased(SurveyDispatch)
            conditions.append(
                exists().where(
                    dispatch.id == Feedback.survey_dispatch_id, dispatch.trigger == self.trigger
                )
            )
        if self.acquisition is not None:
            lifecycle, customer = aliased(Lifecycle), aliased(Customer)
            source = (
                select(acquisition_expression(lifecycle, customer))
                .select_from(lifecycle)
                .join(customer, customer.id == lifecycle.customer_id)
                .where(lifecycle.id == Feedback.lifecycle_id)
                .scalar_subquery()
            )
            conditions.append(source == self.acquisition)
        return conditions


def acquisition_expression(
    lifecycle: Any = Lifecycle, customer: Any = Customer
) -> ColumnElement[Any]:
    """A journey's acquisition source: the lifecycle's own, else the customer's first one."""
    return func.coalesce(
        cast(lifecycle.acquisition_channel, Text),
        cast(customer.acquisition_source, Text),
        literal_column(f"'{UNKNOWN_SOURCE}'"),  # inlined: GROUP BY must match the SELECT
    )


def themes_text() -> ColumnElement[str]:
    # Themes come from a fixed taxonomy of plain words, so a match on the quoted word in
    # the JSON text is exact and works the same on SQLite and PostgreSQL.
    return cast(Feedback.themes, Text)


def theme_condition(theme: str) -> ColumnElement[bool]:
    return themes_text().like(f'%"{theme}"%')


def sentiment_condition(sentiment: str) -> ColumnElement[bool]:
    if sentiment == "negative":
        return Feedback.sentiment < NEGATIVE
    if sentiment == "positive":
        return Feedback.sentiment > POSITIVE
    return and_(Feedback.sentiment >= NEGATIVE, Feedback.sentiment <= POSITIVE)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# ---- parsing query parameters ------------------------------------------------------------


def parse_tz(value: str | None) -> ZoneInfo:
    if value is None or value == "":
        return ZoneInfo("UTC")
    if len(value) > 64 or ".." in value or value.startswith("/"):
        raise InvalidInput("'tz' must be an IANA time zone such as Europe/Berlin.")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput("'tz' must be an IANA time zone such as Europe/Berlin.") from exc


def _parse_date(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value) if len(value) == 10 else _bad_date(name)
    except ValueError:
        return _bad_date(name)


def _bad_date(name: str) -> date:
    raise InvalidInput(f"'{name}' must be a date YYYY-MM-DD.")


def parse_range(
    raw_from: str | None, raw_to: str | None, raw_tz: str | None, today: date | None = None
) -> DateRange:
    """`from`/`to` dates (both included; default: the last 90 days up to today in `tz`)."""
    tz = parse_tz(raw_tz)
    today = today or datetime.now(tz).date()
    end = _parse_date("to", raw_to) if raw_to else today
    start = (
        _parse_date("from", raw_from) if raw_from else end - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    )
    if start > end:
        raise InvalidInput("'from' must not be after 'to'.")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise InvalidInput(f"'from'..'to' may span at most {MAX_RANGE_DAYS} days.")
    return DateRange(start, end, tz)


def _enum_list(name: str, raw: str | None, enum: type[Any]) -> tuple[Any, ...]:
    if not raw:
        return ()
    allowed = [member.value for member in enum]
    values = []
    for part in raw.split(","):
        if part not in allowed:
            raise InvalidInput(
                f"'{name}' must be one or more (comma-separated) of: {', '.join(allowed)}."
            )
        values.append(enum(part))
    return tuple(dict.fromkeys(values))


def parse_int(name: str, raw: str | None, low: int, high: int) -> int | None:
    if raw is None or raw == "":
        return None
    if not re.fullmatch(r"-?\d{1,9}", raw) or not low <= int(raw) <= high:
        raise InvalidInput(f"'{name}' must be an integer from {low} to {high}.")
    return int(raw)


def _choice(name: str, raw: str | None, allowed: tuple[str, ...]) -> str | None:
    if raw is None or raw == "":
        return None
    if raw not in allowed:
        raise InvalidInput(f"'{name}' must be one of: {', '.join(allowed)}.")
    return raw


def _pattern(name: str, raw: str | None, pattern: re.Pattern[str], what: str) -> str | None:
    if raw is None or raw == "":
        return None
    if not pattern.fullmatch(raw):
        raise InvalidInput(f"'{name}' must be {what}.")
    return raw


# The query parameters parse_filter reads: what the feedback is about (an insight's
# criteria keep these), then the dates and the one customer.
CRITERIA_KEYS = (
    "stage",
    "channel",
    "kind",
    "source",
    "score_min",
    "score_max",
    "sentiment",
    "theme",
    "product",
    "acquisition",
    "trigger",
    "q",
)
FILTER_KEYS = (*CRITERIA_KEYS, "from", "to", "tz", "customer")


def parse_filter(query: Mapping[str, str], today: date | None = None) -> FeedbackFilter:
    """A `FeedbackFilter` from query parameters; `InvalidInput` names the bad parameter."""
    q = query.get("q")
    if q is not None and len(q) > MAX_QUERY_CHARS:
        raise InvalidInput(f"'q' is limited to {MAX_QUERY_CHARS} characters.")
    score_min = parse_int("score_min", query.get("score_min"), 0, 10)
    score_max = parse_int("score_max", query.get("score_max"), 0, 10)
    if score_min is not None and score_max is not None and score_min > score_max:
        raise InvalidInput("'score_min' must not be above 'score_max'.")
    acquisition = _choice(
        "acquisition",
        query.get("acquisition"),
        (*(s.value for s in AcquisitionSource), UNKNOWN_SOURCE),
    )
    return FeedbackFilter(
        range=parse_range(query.get("from"), query.get("to"), query.get("tz"), today),
        stages=_enum_list("stage", query.get("stage"), Stage),
        channels=_enum_list("channel", query.get("channel"), Channel),
        kinds=_enum_list("kind", query.get("kind"), FeedbackKind),
        sources=_enum_list("source", query.get("source"), FeedbackSource),
        score_min=score_min,
        score_max=score_max,
        sentiment=_choice("sentiment", query.get("sentiment"), SENTIMENTS),
        theme=_choice("theme", query.get("theme"), THEMES),
        product=_pattern("product", query.get("product"), _SKU, "a product SKU"),
        acquisition=acquisition,
        trigger=_pattern("trigger", query.get("trigger"), _TRIGGER, "a survey trigger name"),
        customer_id=parse_int("customer", query.get("customer"), 1, 2_000_000_000),
        q=(q.strip() or None) if q is not None else None,
    )


# ---- rows for the explorer and the export -----------------------------------------------


@dataclass(frozen=True)
class FeedbackRow:
    id: int
    created_at: datetime
    stage: str
    channel: str
    source: str
    kind: str
    score: int | None
    sentiment: float | None
    themes: list[str]
    text: str | None
    customer_id: int | None
    customer_external_id: str | None
    customer_name: str | None
    conversation_id: str | None
    order_number: str | None
    trigger: str | None
    # Imported web feedback (issue #23): its public page and, when the author is not a
    # known customer, the reviewer (customer None).
    source_url: str | None = None
    platform: str | None = None
    reviewer_handle: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "stage": self.stage,
            "channel": self.channel,
            "source": self.source,
            "kind": self.kind,
            "score": self.score,
            "sentiment": self.sentiment,
            "themes": self.themes,
            "text": self.text,
            "customer": None
            if self.customer_id is None
            else {
                "id": self.customer_id,
                "external_id": self.customer_external_id,
                "name": self.customer_name,
            },
            "reviewer": None
            if self.reviewer_handle is None
            else {"handle": self.reviewer_handle, "channel": self.channel},
            "conversation_id": self.conversation_id,
            "order_number": self.order_number,
            "trigger": self.trigger,
            "source_url": self.source_url,
            "platform": self.platform,
        }


def _rows_select(flt: FeedbackFilter) -> Select[Any]:
    return (
        select(
            Feedback.id,
            Feedback.created_at,
            Feedback.stage,
            Feedback.channel,
            Feedback.source,
            Feedback.kind,
            Feedback.score,
            Feedback.sentiment,
            Feedback.themes,
            Feedback.text,
            Feedback.customer_id,
            Customer.external_id,
            Customer.name,
            Feedback.conversation_id,
            Order.number,
            SurveyDispatch.trigger,
            Feedback.source_url,
            Feedback.platform,
            Reviewer.handle,
        )
        .outerjoin(Customer, Customer.id == Feedback.customer_id)
        .outerjoin(Reviewer, Reviewer.id == Feedback.reviewer_id)
        .outerjoin(Order, Order.id == Feedback.order_id)
        .outerjoin(SurveyDispatch, SurveyDispatch.id == Feedback.survey_dispatch_id)
        .where(*flt.conditions())
    )


def _row(values: Any) -> FeedbackRow:
    (
        id_,
        created,
        stage,
        channel,
        source,
        kind,
        score,
        sentiment,
        themes,
        text_,
        customer_id,
        external_id,
        name,
        conversation_id,
        order_number,
        trigger,
        source_url,
        platform,
        reviewer,
    ) = values
    return FeedbackRow(
        id=id_,
        created_at=created,
        stage=stage.value if stage is not None else UNATTRIBUTED,
        channel=channel.value,
        source=source.value,
        kind=kind.value,
        score=score,
        sentiment=round(sentiment, 4) if sentiment is not None else None,
        themes=list(themes or []),
        text=text_,
        customer_id=customer_id,
        customer_external_id=external_id,
        customer_name=name,
        conversation_id=conversation_id,
        order_number=order_number,
        trigger=trigger,
        source_url=source_url,
        platform=platform,
        reviewer_handle=reviewer,
    )


def parse_sort(raw: str | None) -> str:
    return _choice("sort", raw, SORT_KEYS) or "-created_at"


def _order_by(sort: str) -> list[Any]:
    column = SORT_COLUMNS[sort.lstrip("-")]
    descending = sort.startswith("-")
    primary = column.desc() if descending else column.asc()
    tiebreak = Feedback.id.desc() if descending else Feedback.id.asc()
    if sort.lstrip("-") in ("score", "sentiment"):  # rows without a value go last
        return [column.is_(None), primary, tiebreak]
    return [primary, tiebreak]


@dataclass(frozen=True)
class FeedbackPage:
    rows: list[FeedbackRow]
    total: int
    page: int
    per_page: int
    exact: bool = True


async def feedback_page(
    session: AsyncSession,
    flt: FeedbackFilter,
    *,
    page: int = 1,
    per_page: int = 50,
    sort: str = "-created_at",
) -> FeedbackPage:
    """One page of the filtered feedback rows, newest first by default, and the total.

    The total is exact when the daily rollup can count it (UTC, stage/channel filters)
    or when it is at most `COUNT_LIMIT`; otherwise it is `COUNT_LIMIT` and `exact` False
    (counting a million matching rows would cost more than the page itself).
    """
    total, exact = await _count(session, flt)
    statement = _rows_select(flt).order_by(*_order_by(sort))
    result = await session.execute(statement.limit(per_page).offset((page - 1) * per_page))
    return FeedbackPage([_row(r) for r in result.all()], total, page, per_page, exact)


def rollup_applies(flt: FeedbackFilter) -> bool:
    """`feedback_daily` answers UTC ranges filtered by stage and channel only."""
    return flt.range.tz.key == "UTC" and not (
        flt.kinds
        or flt.sources
        or flt.product
        or flt.q
        or flt.theme
        or flt.sentiment
        or flt.trigger
        or flt.acquisition
        or flt.customer_id is not None
        or flt.score_min is not None
        or flt.score_max is not None
    )


async def _count(session: AsyncSession, flt: FeedbackFilter) -> tuple[int, bool]:
    if rollup_applies(flt):
        d = FeedbackDaily
        statement = select(func.coalesce(func.sum(d.volume), 0)).where(
            d.day >= flt.range.start, d.day <= flt.range.end
        )
        if flt.stages:
            statement = statement.where(d.stage.in_([s.value for s in flt.stages]))
        if flt.channels:
            statement = statement.where(d.channel.in_([c.value for c in flt.channels]))
        return int(await session.scalar(statement) or 0), True
    if flt.q and session.get_bind().dialect.name == "postgresql":
        # For this transaction only. The rows of a date range lie all over the table: at the
        # default random_page_cost (4, spinning disks) the planner rechecks every trigram
        # match of the whole table; at SSD costs it first intersects the trigram and the
        # date bitmaps (2-3x faster on the dashboard benchmark). And a plan for the text
        # itself: a cached generic plan cannot know how rare the searched text is. Both in
        # one round trip: set_config(..., true) is SET LOCAL.
        await session.execute(
            text(
                "SELECT set_config('random_page_cost', '1.1', true),"
                " set_config('plan_cache_mode', 'force_custom_plan', true)"
            )
        )
    limited = select(Feedback.id).where(*flt.conditions()).limit(COUNT_LIMIT + 1).subquery()
    found = int(await session.scalar(select(func.count()).select_from(limited)) or 0)
    return min(found, COUNT_LIMIT), found <= COUNT_LIMIT


async def stream_rows(
    session: AsyncSession, flt: FeedbackFilter, batch_size: int = 2000
) -> AsyncIterator[list[FeedbackRow]]:
    """Every filtered row in id order, in batches, through a server-side cursor."""
    statement = _rows_select(flt).order_by(Feedback.id).execution_options(yield_per=batch_size)
    result = await session.stream(statement)
    async for partition in result.partitions(batch_size):
        yield [_row(values) for values in partition]


# ---- the CSV export done by PostgreSQL (COPY) -------------------------------------------


def _copy_text(value: ColumnElement[Any], formula_starts: tuple[str, ...]) -> ColumnElement[Any]:
    """A text cell as the Python export writes it: NULL as '', formula starts defused.

    An empty result becomes NULL again because COPY writes NULL bare but quotes '' ("").
    """
    cell = func.coalesce(value, literal_column("''", Text))
    quote = literal_column("''''", Text)
    neutral = case(
        (func.left(cell, literal_column("1")).in_(formula_starts), quote + cell), else_=cell
    )
    return func.nullif(neutral, literal_column("''", Text))


# `datetime.isoformat()` of a UTC instant: microseconds only when not zero, then +00:00.
_COPY_CREATED_AT = """replace(to_char(feedback.created_at AT TIME ZONE 'UTC',
 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00', '.000000+', '+')"""
# `repr(round(sentiment, 4))`: shortest digits, at least one decimal, -0.0 kept. The
# numeric has 4 decimals: trailing zeros go, one stays when all four are zeros.
_COPY_SENTIMENT = """(CASE WHEN feedback.sentiment IS NULL THEN NULL
 WHEN feedback.sentiment = 'NaN'::float8 THEN 'nan'
 WHEN feedback.sentiment = 'Infinity'::float8 THEN 'inf'
 WHEN feedback.sentiment = '-Infinity'::float8 THEN '-inf'
 WHEN feedback.sentiment <= 0 AND round(feedback.sentiment::numeric, 4) = 0
  AND (feedback.sentiment < 0 OR feedback.sentiment::text LIKE '-%') THEN '-0.0'
 ELSE rtrim(round(feedback.sentiment::numeric, 4)::text, '0')
  || CASE WHEN right(round(feedback.sentiment::numeric, 4)::text, 4) = '0000'
     THEN '0' ELSE '' END END)"""


def _sql_char(char: str) -> str:
    """One of our own constant characters as an SQL expression (no user input here)."""
    return f"chr({ord(char)})" if char in "\t\r\n" else "'" + char.replace("'", "''") + "'"


def _copy_themes(formula_starts: tuple[str, ...]) -> str:
    """`";".join(themes or [])` of the JSON list, defused and '' as NULL, computed once."""
    starts = ", ".join(_sql_char(c) for c in formula_starts)
    return f"""(CASE WHEN feedback.themes::text = '[]' THEN NULL
 WHEN json_typeof(feedback.themes) = 'array' THEN
 (SELECT nullif(CASE WHEN left(j.s, 1) IN ({starts}) THEN '''' || j.s ELSE j.s END, '')
  FROM (SELECT string_agg(e.t, ';' ORDER BY e.n) AS s
        FROM json_array_elements_text(feedback.themes) WITH ORDINALITY AS e(t, n)) AS j)
 END)"""


def copy_select(flt: FeedbackFilter, formula_starts: tuple[str, ...]) -> Select[Any]:
    """The export's CSV cells as PostgreSQL text, same rows and order as `stream_rows`.

    Column for column what the Python CSV writer makes of a `FeedbackRow` (the dashboard's
    `csv_cells`), so `COPY (...) TO STDOUT (FORMAT csv)` writes the same bytes (bar the
    line ends: COPY ends records with LF). PostgreSQL only.
    """

    def text_cell(value: Any, name: str) -> Any:
        return _copy_text(cast(value, Text), formula_starts).label(name)

    return (
        select(
            cast(Feedback.id, Text).label("id"),
            literal_column(_COPY_CREATED_AT).label("created_at"),
            text_cell(
                func.coalesce(cast(Feedback.stage, Text), literal_column(f"'{UNATTRIBUTED}'")),
                "stage",
            ),
            text_cell(Feedback.channel, "channel"),
            text_cell(Feedback.source, "source"),
            text_cell(Feedback.kind, "kind"),
            cast(Feedback.score, Text).label("score"),
            literal_column(_COPY_SENTIMENT).label("sentiment"),
            literal_column(_copy_themes(formula_starts), Text).label("themes"),
            text_cell(Feedback.text, "text"),
            cast(Feedback.customer_id, Text).label("customer_id"),
            text_cell(Customer.external_id, "customer_external_id"),
            text_cell(Customer.name, "customer_name"),
            text_cell(Order.number, "order_number"),
            text_cell(Feedback.conversation_id, "conversation_id"),
            text_cell(SurveyDispatch.trigger, "trigger"),
        )
        .select_from(Feedback)
        .outerjoin(Customer, Customer.id == Feedback.customer_id)
        .outerjoin(Order, Order.id == Feedback.order_id)
        .outerjoin(SurveyDispatch, SurveyDispatch.id == Feedback.survey_dispatch_id)
        .where(*flt.conditions())
        .order_by(Feedback.id)
    )


def positional_query(statement: Select[Any], dialect: Dialect) -> tuple[str, list[Any]]:
    """SQL with $1.. placeholders and its parameters in order, bind-processed (for asyncpg).

    `dialect` should be the connection's (initialised: it knows how strings are escaped).
    """
    expanded = statement.compile(dialect=dialect).construct_expanded_state(escape_names=False)
    processors = expanded.processors
    names = expanded.positiontup or []
    values = expanded.positional_parameters
    args = [processors[n](v) if n in processors else v for n, v in zip(names, values, strict=True)]
    return expanded.statement, args
