"""CX metrics of SPEC §7, computed in SQL (one GROUP BY per question, never a row loop).

* CSAT % = csat answers of 4 or 5 / csat answers x 100.
* NPS = % promoters (9-10) - % detractors (0-6); passives (7-8) count in the base.
* CES = mean of ces answers (1-7, lower is easier).
* Response rate = answered / sent survey dispatches, by the time the survey was sent.
* Volume = feedback rows; sentiment = mean VADER compound of the rows that have a text.
* Uncertainty (bot/domain/stats.py): 95 % Wilson interval of CSAT %, normal-approximation
  interval of NPS; with `min_answers`, a metric on fewer answers is flagged `too_few`.
* Trend buckets cut by the range or not over yet (on `today`) are flagged `partial`.

Every query returns raw counts and sums (`MetricCounts`); ratios are derived from them,
so totals, previous periods and groups are consistent with each other.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Date,
    Select,
    String,
    and_,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from bot.domain.enums import FeedbackKind
from bot.domain.feedback_query import (
    UNSOLICITED,
    DateRange,
    FeedbackFilter,
    acquisition_expression,
    rollup_applies,
)
from bot.domain.lifecycle import STAGE_ORDER
from bot.domain.stats import nps_interval, wilson_interval
from bot.storage.models import (
    Customer,
    Feedback,
    FeedbackDaily,
    FeedbackDailyGroup,
    FeedbackMonthlyGroup,
    Lifecycle,
    OrderItem,
    SurveyDispatch,
    SurveyDispatchDaily,
    SurveyDispatchSourceDaily,
)
from bot.storage.rollup import UNATTRIBUTED

BUCKETS = ("day", "week", "month")
DIMENSIONS = ("stage", "channel", "product", "acquisition_source", "trigger")
# Above this many buckets a trend is refused (a 3-year daily trend is still fine).
MAX_BUCKETS = 1200


@dataclass(frozen=True)
class MetricCounts:
    """Raw counts and sums behind every metric; add two with `+`."""

    volume: int = 0
    csat_responses: int = 0
    csat_satisfied: int = 0
    nps_responses: int = 0
    nps_promoters: int = 0
    nps_detractors: int = 0
    ces_responses: int = 0
    ces_sum: int = 0
    sentiment_count: int = 0
    sentiment_sum: float = 0.0
    # None: response rate does not apply (filters that dispatches do not have).
    dispatches_sent: int | None = 0
    dispatches_answered: int | None = 0

    def __add__(self, other: MetricCounts) -> MetricCounts:
        values: dict[str, Any] = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            values[f.name] = None if a is None or b is None else a + b
        return MetricCounts(**values)

    @property
    def csat_percent(self) -> float | None:
        return _percent(self.csat_satisfied, self.csat_responses)

    @property
    def nps_passives(self) -> int:
        return self.nps_responses - self.nps_promoters - self.nps_detractors

    @property
    def nps(self) -> float | None:
        if not self.nps_responses:
            return None
        return round(100 * (self.nps_promoters - self.nps_detractors) / self.nps_responses, 1)

    @property
    def ces(self) -> float | None:
        return round(self.ces_sum / self.ces_responses, 2) if self.ces_responses else None

    @property
    def response_rate(self) -> float | None:
        if self.dispatches_sent is None or self.dispatches_answered is None:
            return None
        return _percent(self.dispatches_answered, self.dispatches_sent)

    @property
    def sentiment(self) -> float | None:
        if not self.sentiment_count:
            return None
        return round(self.sentiment_sum / self.sentiment_count, 3)

    @property
    def csat_interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.csat_satisfied, self.csat_responses)

    @property
    def nps_interval(self) -> tuple[float, float] | None:
        return nps_interval(self.nps_promoters, self.nps_detractors, self.nps_responses)

    def as_json(self, min_answers: int | None = None) -> dict[str, Any]:
        """The figures with their counts and 95 % intervals; given `min_answers`, CSAT, NPS
        and CES also say whether they rest on too few answers to be read (`too_few`)."""
        csat_interval, nps_interval_ = self.csat_interval, self.nps_interval
        body: dict[str, Any] = {
            "volume": self.volume,
            "csat": {
                "percent": self.csat_percent,
                "responses": self.csat_responses,
                "satisfied": self.csat_satisfied,
                "interval": list(csat_interval) if csat_interval else None,
            },
            "nps": {
                "score": self.nps,
                "responses": self.nps_responses,
                "promoters": self.nps_promoters,
                "passives": self.nps_passives,
                "detractors": self.nps_detractors,
                "interval": list(nps_interval_) if nps_interval_ else None,
            },
            "ces": {"mean": self.ces, "responses": self.ces_responses},
            "response_rate": {
                "percent": self.response_rate,
                "sent": self.dispatches_sent,
                "answered": self.dispatches_answered,
            },
            "sentiment": {"mean": self.sentiment, "count": self.sentiment_count},
        }
        if min_answers is not None:
            body["csat"]["too_few"] = self.csat_responses < min_answers
            body["nps"]["too_few"] = self.nps_responses < min_answers
            body["ces"]["too_few"] = self.ces_responses < min_answers
        return body


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def feedback_aggregates() -> list[ColumnElement[Any]]:
    """The aggregate columns of `MetricCounts` over `Feedback` (order matters)."""
    kind, score = Feedback.kind, Feedback.score
    csat = (kind == FeedbackKind.csat) & score.is_not(None)
    nps = (kind == FeedbackKind.nps) & score.is_not(None)
    ces = (kind == FeedbackKind.ces) & score.is_not(None)
    return [
        func.count(),
        _count_if(csat),
        _count_if(csat & (score >= 4)),
        _count_if(nps),
        _count_if(nps & (score >= 9)),
        _count_if(nps & (score <= 6)),
        _count_if(ces),
        func.coalesce(func.sum(case((ces, score), else_=0)), 0),
        func.count(Feedback.sentiment),
        func.coalesce(func.sum(Feedback.sentiment), 0.0),
    ]


def counts_from(
    values: Sequence[Any], sent: int | None = 0, answered: int | None = 0
) -> MetricCounts:
    volume, csat_n, csat_ok, nps_n, pro, det, ces_n, ces_sum, sent_n, sent_sum = values
    return MetricCounts(
        volume=int(volume),
        csat_responses=int(csat_n),
        csat_satisfied=int(csat_ok),
        nps_responses=int(nps_n),
        nps_promoters=int(pro),
        nps_detractors=int(det),
        ces_responses=int(ces_n),
        ces_sum=int(ces_sum),
        sentiment_count=int(sent_n),
        sentiment_sum=float(sent_sum),
        dispatches_sent=sent,
        dispatches_answered=answered,
    )


# ---- response rate -----------------------------------------------------------------------


def _dispatch_applies(flt: FeedbackFilter) -> bool:
    """Survey dispatches know their time, trigger, customer and journey, nothing else."""
    return not (
        flt.stages
        or flt.channels
        or flt.kinds
        or flt.sources
        or flt.product
        or flt.q
        or flt.theme
        or flt.sentiment
        or flt.score_min is not None
        or flt.score_max is not None
    )


def _dispatch_select(
    flt: FeedbackFilter, *columns: Any, by_acquisition: bool = False
) -> Select[Any]:
    answered = _count_if(SurveyDispatch.answered_at.is_not(None))
    statement = select(*columns, func.count(), answered).where(
        SurveyDispatch.sent_at >= flt.range.start_utc, SurveyDispatch.sent_at < flt.range.end_utc
    )
    if flt.trigger == UNSOLICITED:
        statement = statement.where(SurveyDispatch.id.is_(None))
    elif flt.trigger is not None:
        statement = statement.where(SurveyDispatch.trigger == flt.trigger)
    if flt.customer_id is not None:
        statement = statement.where(SurveyDispatch.customer_id == flt.customer_id)
    if flt.acquisition is not None or by_acquisition:
        statement = statement.join(Lifecycle, Lifecycle.id == SurveyDispatch.lifecycle_id).join(
            Customer, Customer.id == Lifecycle.customer_id
        )
        if flt.acquisition is not None:
            statement = statement.where(acquisition_expression() == flt.acquisition)
    return statement


# ---- totals, trend, breakdowns --------------------------------------------------------------


async def metric_counts(session: AsyncSession, flt: FeedbackFilter) -> MetricCounts:
    """All metrics for the filter's range (one feedback query, one dispatch query)."""
    rows = await feedback_rows(session, flt, ())
    counts = rows[0][1] if rows else MetricCounts()
    if not _dispatch_applies(flt):
        return _with_dispatches(counts, None, None)
    sent, answered = (await dispatch_rows(session, flt, None, by_trigger=False)).get((), (0, 0))
    return _with_dispatches(counts, sent, answered)


# ---- where the numbers are read: daily pre-aggregates or the rows themselves ---------------


def _rollup_aggregates(d: Any = FeedbackDaily) -> list[ColumnElement[Any]]:
    columns = [
        d.volume,
        d.csat_responses,
        d.csat_satisfied,
        d.nps_responses,
        d.nps_promoters,
        d.nps_detractors,
        d.ces_responses,
        d.ces_sum,
        d.sentiment_count,
    ]
    sums: list[ColumnElement[Any]] = [func.coalesce(func.sum(c), 0) for c in columns]
    return [*sums, func.coalesce(func.sum(d.sentiment_sum), 0.0)]


def _rollup_conditions(flt: FeedbackFilter) -> list[ColumnElement[bool]]:
    d = FeedbackDaily
    conditions = [d.day >= flt.range.start, d.day <= flt.range.end]
    if flt.stages:
        conditions.append(d.stage.in_([s.value for s in flt.stages]))
    if flt.channels:
        conditions.append(d.channel.in_([c.value for c in flt.channels]))
    return conditions


_ROLLUP_COLUMNS = (
    "key",
    "label",
    "volume",
    "csat_responses",
    "csat_satisfied",
    "nps_responses",
    "nps_promoters",
    "nps_detractors",
    "ces_responses",
    "ces_sum",
    "sentiment_count",
    "sentiment_sum",
)


def month_split(start: date, end: date) -> tuple[list[tuple[date, date]], tuple[date, date] | None]:
    """The days start..end as (first, last) day spans outside whole months, and the whole
    months as [first month, month after the last) (first days), or None when there are none."""
    first_full = start if start.day == 1 else _next_month(start)
    after_end = end + timedelta(days=1)
    end_full = after_end if after_end.day == 1 else after_end.replace(day=1)
    if first_full >= end_full:
        return [(start, end)], None
    spans = [(start, first_full - timedelta(days=1))] if start < first_full else []
    if end_full <= end:
        spans.append((end_full, end))
    return spans, (first_full, end_full)


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def group_rollup(dimension: str, date_range: DateRange) -> Any:
    """feedback_daily_groups rows of `dimension` in the range (UTC days), whole months read
    from feedback_monthly_groups: a subquery with the columns of both."""
    d, m = FeedbackDailyGroup, FeedbackMonthlyGroup
    spans, months = month_split(date_range.start, date_range.end)
    parts: list[Select[Any]] = []
    if spans:
        in_spans = or_(*(and_(d.day >= a, d.day <= b) for a, b in spans))
        columns = [getattr(d, c) for c in _ROLLUP_COLUMNS]
        parts.append(select(*columns).where(d.dimension == dimension, in_spans))
    if months:
        columns = [getattr(m, c) for c in _ROLLUP_COLUMNS]
        parts.append(
            select(*columns).where(
                m.dimension == dimension, m.month >= months[0], m.month < months[1]
            )
        )
    return (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()


def day_bucket(column: Any, dialect: str, bucket: str) -> ColumnElement[Any]:
    """The bucket of a DATE column (the rollups' UTC day)."""
    if bucket == "day":
        return cast(column, Date) if dialect == "postgresql" else column
    if dialect == "postgresql":
        return cast(func.date_trunc(literal_column(f"'{bucket}'"), column), Date)
    if bucket == "week":
        return func.date(column, "weekday 0", "-6 days")
    return func.strftime("%Y-%m-01", column)


def _normal(name: str, value: Any) -> Any:
    return as_date(value) if name == "bucket" else _key(value)


def stage_key() -> ColumnElement[Any]:
    """Feedback's stage as the dashboard groups it: 'unattributed' for a review from a
    reviewer who is not a known customer (no lifecycle), as in the rollups."""
    return func.coalesce(cast(Feedback.stage, String(32)), literal_column(f"'{UNATTRIBUTED}'"))


async def feedback_rows(
    session: AsyncSession, flt: FeedbackFilter, keys: Sequence[str], bucket: str | None = None
) -> list[tuple[tuple[Any, ...], MetricCounts]]:
    """Metric counts grouped by `keys` (of "bucket", "stage", "channel"), from the daily
    pre-aggregates when they can answer, else from the feedback rows."""
    dialect = session.get_bind().dialect.name
    if rollup_applies(flt):
        d = FeedbackDaily
        columns: dict[str, Any] = {"stage": d.stage, "channel": d.channel}
        if bucket:
            columns["bucket"] = day_bucket(d.day, dialect, bucket)
        aggregates, conditions = _rollup_aggregates(), _rollup_conditions(flt)
    else:
        columns = {"stage": stage_key(), "channel": Feedback.channel}
        if bucket:
            columns["bucket"] = bucket_expression(Feedback.created_at, dialect, flt.range, bucket)
        aggregates, conditions = feedback_aggregates(), flt.conditions()
    group = [columns[k] for k in keys]
    statement = select(*group, *aggregates).where(*conditions)
    if group:
        statement = statement.group_by(*group)
        if rollup_applies(flt):  # rows of zeros left by deletes and moves are no group
            statement = statement.having(func.sum(FeedbackDaily.volume) > 0)
    result = []
    for row in await session.execute(statement):
        key = tuple(_normal(name, value) for name, value in zip(keys, row, strict=False))
        result.append((key, counts_from(row[len(keys) :], None, None)))
    return result


async def dispatch_rows(
    session: AsyncSession, flt: FeedbackFilter, bucket: str | None, *, by_trigger: bool
) -> dict[tuple[Any, ...], tuple[int, int]]:
    """(sent, answered) surveys grouped by bucket and/or trigger, by the time they were sent."""
    dialect = session.get_bind().dialect.name
    keys = (["bucket"] if bucket else []) + (["trigger"] if by_trigger else [])
    if flt.range.tz.key == "UTC" and flt.acquisition is None and flt.customer_id is None:
        d = SurveyDispatchDaily
        columns: dict[str, Any] = {"trigger": d.trigger}
        if bucket:
            columns["bucket"] = day_bucket(d.day, dialect, bucket)
        group = [columns[k] for k in keys]
        statement = select(
            *group, func.coalesce(func.sum(d.sent), 0), func.coalesce(func.sum(d.answered), 0)
        ).where(d.day >= flt.range.start, d.day <= flt.range.end)
        if flt.trigger is not None:
            statement = statement.where(d.trigger == flt.trigger)
    else:
        raw: dict[str, Any] = {"trigger": SurveyDispatch.trigger}
        if bucket:
            raw["bucket"] = bucket_expression(SurveyDispatch.sent_at, dialect, flt.range, bucket)
        group = [raw[k] for k in keys]
        statement = _dispatch_select(flt, *group)
    if group:
        statement = statement.group_by(*group)
    return {
        tuple(_normal(name, value) for name, value in zip(keys, row, strict=False)): (
            int(row[-2] or 0),
            int(row[-1] or 0),
        )
        for row in await session.execute(statement)
    }


# Why a trend bucket holds less than a whole day/week/month (None: it is whole).
PARTIAL_REASONS = ("not_over", "starts_before_range", "ends_after_range")


@dataclass(frozen=True)
class TrendPoint:
    start: date
    counts: MetricCounts
    partial: str | None = None  # one of PARTIAL_REASONS

    def as_json(self, min_answers: int | None = None) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "partial": self.partial,
            **self.counts.as_json(min_answers),
        }


def partial_reason(
    start: date, after: date, date_range: DateRange, today: date | None
) -> str | None:
    """Why the bucket [start, after) is partial: not over on `today` (in the range's time
    zone), or cut by the range; None when it is a whole bucket of the past."""
    last = after - timedelta(days=1)
    if today is not None and last >= today:
        return "not_over"
    if start < date_range.start:
        return "starts_before_range"
    if last > date_range.end:
        return "ends_after_range"
    return None


def next_bucket(start: date, bucket: str) -> date:
    if bucket == "day":
        return start + timedelta(days=1)
    if bucket == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def bucket_starts(date_range: DateRange, bucket: str) -> list[date]:
    """The first day of every bucket touching the range (weeks start on Monday)."""
    first = bucket_of(date_range.start, bucket)
    starts = []
    current = first
    while current <= date_range.end:
        starts.append(current)
        current = next_bucket(current, bucket)
    return starts


def bucket_of(day: date, bucket: str) -> date:
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    return day


_TZ_KEY = re.compile(r"^[A-Za-z0-9_+\-/]{1,64}$")


def bucket_expression(
    column: Any, dialect: str, date_range: DateRange, bucket: str
) -> ColumnElement[Any]:
    """The local calendar bucket (a date) of a UTC timestamp column, computed in SQL."""
    if dialect == "postgresql":
        key = date_range.tz.key
        if not _TZ_KEY.match(key):  # zoneinfo keys only; inlined so GROUP BY matches SELECT
            raise ValueError(f"unexpected time zone key {key!r}")
        local = func.timezone(literal_column(f"'{key}'"), column)
        return cast(func.date_trunc(literal_column(f"'{bucket}'"), local), Date)
    # SQLite has no time zones: shift by the zone's UTC offset, which changes only at the
    # few DST transitions inside the range (a CASE over those).
    segments = offset_segments(date_range.tz, date_range.start_utc, date_range.end_utc)
    whens = [(column < until, f"{offset:+d} seconds") for until, offset in segments[:-1]]
    modifier: Any = (
        case(*whens, else_=f"{segments[-1][1]:+d} seconds")
        if whens
        else (f"{segments[-1][1]:+d} seconds")
    )
    local = func.datetime(column, modifier)
    if bucket == "week":
        return func.date(local, "weekday 0", "-6 days")
    if bucket == "month":
        return func.strftime("%Y-%m-01", local)
    return func.date(local)


def offset_segments(tz: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """[(until, utc offset in seconds)]: the offset applies before `until`; the last is open."""

    def offset(seconds: int) -> int:
        moment = datetime.fromtimestamp(seconds, timezone.utc).astimezone(tz)
        delta = moment.utcoffset()
        return int(delta.total_seconds()) if delta else 0

    segments: list[tuple[datetime, int]] = []
    cursor, stop = int(start.timestamp()), int(end.timestamp())
    current = offset(cursor)
    while cursor < stop:
        step = min(cursor + 86400, stop)
        if offset(step) != current:
            low, high = cursor, step  # the offset changes in (low, high]
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if offset(middle) == current else (low, middle)
            segments.append((datetime.fromtimestamp(high, timezone.utc), current))
            current = offset(high)
        cursor = step
    segments.append((end, current))
    return segments


def as_date(value: Any) -> date:
    """A date column's value (a bucket_expression) as a date: PostgreSQL gives a date or
    datetime, SQLite its ISO text."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


async def trend(
    session: AsyncSession, flt: FeedbackFilter, bucket: str, today: date | None = None
) -> list[TrendPoint]:
    """Metrics per day/week/month (local to the range's time zone); empty buckets are zero.
    A bucket cut by the range, or not over on `today` (local date), is marked partial."""
    starts = bucket_starts(flt.range, bucket)
    if len(starts) > MAX_BUCKETS:
        from bot.domain.errors import InvalidInput

        raise InvalidInput(
            f"'bucket' {bucket} gives too many points for this range; use a wider one."
        )
    by_start = {
        key[0]: counts for key, counts in await feedback_rows(session, flt, ["bucket"], bucket)
    }
    applies = _dispatch_applies(flt)
    answered_by: dict[date, tuple[int, int]] = {}
    if applies:
        found = await dispatch_rows(session, flt, bucket, by_trigger=False)
        answered_by = {key[0]: value for key, value in found.items()}
    points = []
    for start in starts:
        counts = by_start.get(start, MetricCounts())
        sent, answered = answered_by.get(start, (0, 0)) if applies else (None, None)
        partial = partial_reason(start, next_bucket(start, bucket), flt.range, today)
        points.append(TrendPoint(start, _with_dispatches(counts, sent, answered), partial))
    return points


@dataclass(frozen=True)
class GroupMetrics:
    key: str
    label: str
    counts: MetricCounts
    previous: MetricCounts

    def as_json(self, min_answers: int | None = None) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            **self.counts.as_json(min_answers),
            "previous": self.previous.as_json(min_answers),
        }


def _group_select(dimension: str) -> tuple[Select[Any], Any, Any]:
    """(statement with the joins the dimension needs, key column, label column)."""
    base = select().select_from(Feedback)
    key: Any
    if dimension == "stage":
        key = stage_key()
        return base, key, key
    if dimension == "channel":
        return base, Feedback.channel, Feedback.channel
    if dimension == "product":
        # One row per (order, product): an order listing a product twice counts once.
        items = (
            select(OrderItem.order_id, OrderItem.sku, func.max(OrderItem.name).label("name"))
            .group_by(OrderItem.order_id, OrderItem.sku)
            .subquery()
        )
        joined = base.join(items, items.c.order_id == Feedback.order_id)
        return joined, items.c.sku, func.max(items.c.name)
    if dimension == "acquisition_source":
        # Outer joins: an unattributed review (no lifecycle) counts under 'unknown'.
        joined = base.outerjoin(Lifecycle, Lifecycle.id == Feedback.lifecycle_id).outerjoin(
            Customer, Customer.id == Lifecycle.customer_id
        )
        key = acquisition_expression()
        return joined, key, key
    joined = base.outerjoin(SurveyDispatch, SurveyDispatch.id == Feedback.survey_dispatch_id)
    key = func.coalesce(SurveyDispatch.trigger, literal_column(f"'{UNSOLICITED}'"))
    return joined, key, key


def _key(value: Any) -> str:
    return str(getattr(value, "value", value))


async def _group_counts(
    session: AsyncSession, flt: FeedbackFilter, dimension: str
) -> dict[str, tuple[str, MetricCounts]]:
    result: dict[str, tuple[str, MetricCounts]] = {}
    if dimension in ("stage", "channel"):
        for key, counts in await feedback_rows(session, flt, [dimension]):
            result[key[0]] = (key[0], counts)
    elif rollup_applies(flt) and not (flt.stages or flt.channels):
        g = group_rollup(dimension, flt.range)
        rows = await session.execute(
            select(g.c.key, func.max(g.c.label), *_rollup_aggregates(g.c))
            .group_by(g.c.key)
            # A key whose rows were all moved or deleted keeps rows of zeros: not a group.
            .having(func.sum(g.c.volume) > 0)
        )
        for row in rows:
            result[str(row[0])] = (str(row[1]), counts_from(row[2:], None, None))
    else:
        base, key_column, label = _group_select(dimension)
        statement = base.add_columns(key_column, label, *feedback_aggregates())
        for row in await session.execute(statement.where(*flt.conditions()).group_by(key_column)):
            result[_key(row[0])] = (_key(row[1]), counts_from(row[2:], None, None))
    if dimension in ("trigger", "acquisition_source") and _dispatch_applies(flt):
        if dimension == "trigger":
            found = await dispatch_rows(session, flt, None, by_trigger=True)
            by_key = {key[0]: value for key, value in found.items()}
        else:
            by_key = await _dispatches_by_source(session, flt)
        for k, (sent, answered) in by_key.items():
            label_, counts = result.get(k, (k, MetricCounts()))
            result[k] = (label_, _with_dispatches(counts, sent, answered))
        for k, (label_, counts) in result.items():
            if k not in by_key:
                result[k] = (label_, _with_dispatches(counts, 0, 0))
    return result


async def _dispatches_by_source(
    session: AsyncSession, flt: FeedbackFilter
) -> dict[str, tuple[int, int]]:
    """(sent, answered) surveys per acquisition source of their journey."""
    if flt.range.tz.key == "UTC" and flt.customer_id is None and flt.trigger is None:
        s = SurveyDispatchSourceDaily
        statement = (
            select(s.source, func.sum(s.sent), func.sum(s.answered))
            .where(s.day >= flt.range.start, s.day <= flt.range.end)
            .group_by(s.source)
            .having(func.sum(s.sent) > 0)
        )
        if flt.acquisition is not None:
            statement = statement.where(s.source == flt.acquisition)
    else:
        dkey = acquisition_expression()
        statement = _dispatch_select(flt, dkey, by_acquisition=True).group_by(dkey)
    rows = await session.execute(statement)
    return {_key(r[0]): (int(r[1]), int(r[2] or 0)) for r in rows}


def _with_dispatches(counts: MetricCounts, sent: int | None, answered: int | None) -> MetricCounts:
    values = {f.name: getattr(counts, f.name) for f in fields(counts)}
    values.update(dispatches_sent=sent, dispatches_answered=answered)
    return MetricCounts(**values)


async def breakdown(
    session: AsyncSession,
    flt: FeedbackFilter,
    dimension: str,
    previous_session: AsyncSession | None = None,
) -> list[GroupMetrics]:
    """Metrics per group of `dimension` for the range, each with its previous period.

    A product group counts the feedback about orders containing that product (an order
    with three products counts for each). Stages come in journey order, the others by
    volume. Response rate applies to trigger and acquisition source groups only.
    Given `previous_session`, the previous period is read on it while the range is read
    on `session` (the same queries, on two connections at once).
    """
    if dimension not in DIMENSIONS:
        raise ValueError(dimension)
    before = flt.with_range(flt.range.previous())
    if previous_session is None:
        current = await _group_counts(session, flt, dimension)
        previous = await _group_counts(session, before, dimension)
    else:
        current, previous = await asyncio.gather(
            _group_counts(session, flt, dimension),
            _group_counts(previous_session, before, dimension),
        )
    empty = MetricCounts(dispatches_sent=None, dispatches_answered=None)
    groups = [
        GroupMetrics(k, label, counts, previous.get(k, (label, empty))[1])
        for k, (label, counts) in current.items()
    ]
    if dimension == "stage":
        order = {stage.value: i for i, stage in enumerate(STAGE_ORDER)}
        groups.sort(key=lambda g: order.get(g.key, 99))  # 'unattributed' last
    else:
        groups.sort(key=lambda g: (-g.counts.volume, g.key))
    return groups


@dataclass(frozen=True)
class Overview:
    range: DateRange
    current: MetricCounts
    previous: MetricCounts
    bucket: str | None
    trend: list[TrendPoint]

    def as_json(self, min_answers: int | None = None) -> dict[str, Any]:
        previous = self.range.previous()
        body: dict[str, Any] = {
            "range": self.range.as_json(),
            "previous_range": previous.as_json(),
            "current": self.current.as_json(min_answers),
            "previous": self.previous.as_json(min_answers),
            "bucket": self.bucket,
            "trend": [point.as_json(min_answers) for point in self.trend],
        }
        if min_answers is not None:
            body["min_answers"] = min_answers
        return body


async def overview(
    session: AsyncSession, flt: FeedbackFilter, bucket: str | None, today: date | None = None
) -> Overview:
    """Totals for the range and for the previous period of the same length, plus a trend
    (buckets not over on `today`, the local date, are marked partial)."""
    points = await trend(session, flt, bucket, today) if bucket else []
    if points:  # the buckets partition the range: their sum is the total (one scan less)
        current = points[0].counts
        for point in points[1:]:
            current = current + point.counts
    else:
        current = await metric_counts(session, flt)
    previous = await metric_counts(session, flt.with_range(flt.range.previous()))
    return Overview(flt.range, current, previous, bucket, points)
