"""Loyalty: do customers come back for another lifecycle, and what did the one before feel like?

Definitions (docs/decisions.md, "Loyalty and insights"):

* A **purchase lifecycle** is a lifecycle that belongs to an order or a subscription period
  (SPEC §3: one per purchase or billing period). Journeys that never bought (discovery /
  research only) are not counted: browsing again is not coming back.
* **Repeat rate** (window W days): of the customers whose *first* purchase lifecycle opened
  in the range, the share whose second one opened at most W days after the first. Only
  customers whose first purchase is at least W days before `as_of` are in the base (the
  others could still return: counted as `pending`, never as lost).
* **Lifecycles per customer**: purchase lifecycles opened in the range / distinct customers
  they belong to (subscription periods included: a monthly subscriber has 12 a year), with
  the distribution (1, 2, 3, 4+) and how many of those customers were new (first purchase
  in the range) or returning.
* **Subscription renewal rate**: subscription periods that closed in the range and were
  followed by another period of the same subscription / subscription periods that closed.
* **Return rate by experience**: each purchase lifecycle opened in the range (and at least W
  days before `as_of`) returned when the customer's next purchase lifecycle opened at most W
  days after it; grouped by the lifecycle's CSAT band (mean csat: >= 4 satisfied, <= 2
  dissatisfied, else neutral), NPS band (mean nps: >= 9 promoter, >= 7 passive, else
  detractor), support (escalated to a person / reached the support stage / none) and
  acquisition source (the lifecycle's, else the customer's).
* **Cohorts**: customers by the month of their first purchase (in the range's time zone);
  cell (cohort, k) = customers of the cohort with a purchase lifecycle opened in month k
  after it (k = 0 is the cohort itself), for months that have started by `as_of`.

Everything is aggregated in SQL; Python only reshapes the few grouped rows. On SQLite from
the raw rows (window functions ROW_NUMBER/LEAD/MIN OVER); on PostgreSQL (issue #25 item 4)
from the per-lifecycle summary `lifecycle_loyalty` that triggers keep exact
(bot/storage/rollup_loyalty.py): the repeat rate, lifecycles per customer and return rates
are one grouped scan of the range's purchase rows, the renewal rate one index range; and
since migration 0034 from the monthly roll-up of that summary
(bot/storage/rollup_loyalty_monthly.py) for the range's whole UTC months, the summary rows
of the two partial months only (docs/decisions.md, "Loyalty overview over months").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    Subquery,
    Text,
    and_,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
    text,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from bot.domain.enums import FeedbackKind, LifecycleKind, Stage
from bot.domain.feedback_query import UNKNOWN_SOURCE, DateRange
from bot.domain.metrics import as_date, bucket_expression
from bot.domain.stats import wilson_interval
from bot.storage import rollup_loyalty_monthly
from bot.storage.models import (
    Conversation,
    Customer,
    Escalation,
    Feedback,
    Lifecycle,
    LifecycleLoyalty,
)

DEFAULT_WINDOW_DAYS = 90
MAX_WINDOW_DAYS = 730
DEFAULT_COHORT_MONTHS = 12
MAX_COHORT_MONTHS = 24
CSAT_BANDS = ("satisfied", "neutral", "dissatisfied", "no_answer")
NPS_BANDS = ("promoter", "passive", "detractor", "no_answer")
SUPPORT_BANDS = ("none", "support_contact", "escalated")


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


@dataclass(frozen=True)
class LoyaltyQuery:
    range: DateRange
    as_of: datetime
    window_days: int = DEFAULT_WINDOW_DAYS

    @property
    def cutoff(self) -> datetime:
        """Lifecycles opened after this are too recent to judge (their window is still open)."""
        return self.as_of - timedelta(days=self.window_days)


# ---- building blocks -------------------------------------------------------------------------


def is_purchase() -> ColumnElement[bool]:
    return or_(Lifecycle.order_id.is_not(None), Lifecycle.subscription_id.is_not(None))


def seconds_between(start: Any, end: Any, dialect: str) -> ColumnElement[int]:
    """Whole seconds from `start` to `end` (both UTC timestamp columns)."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", end) - func.extract("epoch", start), Integer)
    return cast(func.strftime("%s", end), Integer) - cast(func.strftime("%s", start), Integer)


def _opened_in(date_range: DateRange) -> Select[Any]:
    """Ids of the purchase lifecycles opened in the range."""
    return (
        select(Lifecycle.id)
        .where(is_purchase(), _in_range(Lifecycle.opened_at, date_range))
        .correlate(None)  # never tied to an outer query on lifecycles
    )


def _customers_in(date_range: DateRange) -> Select[Any]:
    """Customers with a purchase lifecycle opened in the range."""
    return (
        select(Lifecycle.customer_id)
        .where(is_purchase(), _in_range(Lifecycle.opened_at, date_range))
        .correlate(None)
    )


def purchases(date_range: DateRange) -> Subquery:
    """Purchase lifecycles of the customers who had one in the range, with their place in
    the customer's whole history.

    `seq` 1 is the customer's first purchase; `next_opened_at` is when their next one opened;
    `first_opened_at` when their first one did.
    """
    order = (Lifecycle.opened_at, Lifecycle.id)
    return (
        select(
            Lifecycle.id,
            Lifecycle.customer_id,
            Lifecycle.opened_at,
            Lifecycle.stage,
            Lifecycle.acquisition_channel,
            func.row_number().over(partition_by=Lifecycle.customer_id, order_by=order).label("seq"),
            func.lead(Lifecycle.opened_at)
            .over(partition_by=Lifecycle.customer_id, order_by=order)
            .label("next_opened_at"),
            func.min(Lifecycle.opened_at)
            .over(partition_by=Lifecycle.customer_id)
            .label("first_opened_at"),
        )
        .where(is_purchase(), Lifecycle.customer_id.in_(_customers_in(date_range)))
        .subquery("purchases")
    )


def _returned(p: Subquery, window_days: int, dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        # Exact to the microsecond, as the summary's gap_days (a timestamptz difference
        # counts days as 24 h, as epoch seconds do; the whole seconds below rounded).
        within: ColumnElement[bool] = (p.c.next_opened_at - p.c.opened_at) <= timedelta(
            days=window_days
        )
    else:
        within = seconds_between(p.c.opened_at, p.c.next_opened_at, dialect) <= window_days * 86400
    return and_(p.c.next_opened_at.is_not(None), within)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _in_range(column: Any, date_range: DateRange) -> ColumnElement[bool]:
    return and_(column >= date_range.start_utc, column < date_range.end_utc)


# ---- repeat rate, lifecycles per customer, renewals -----------------------------------------


@dataclass(frozen=True)
class RepeatRate:
    customers: int  # first purchase in range and old enough to judge
    repeaters: int
    pending: int  # first purchase in range but less than W days ago

    @property
    def rate(self) -> float | None:
        return _percent(self.repeaters, self.customers)

    def as_json(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "repeaters": self.repeaters,
            "rate": self.rate,
            "pending": self.pending,
        }


async def repeat_rate(
    session: AsyncSession, query: LoyaltyQuery, *, from_rows: bool = False
) -> RepeatRate:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and not from_rows:
        return (await _summary_figures(session, query))[0]
    p = purchases(query.range)
    mature = p.c.opened_at <= query.cutoff
    row = (
        await session.execute(
            select(
                _count_if(mature),
                _count_if(and_(mature, _returned(p, query.window_days, dialect))),
                _count_if(p.c.opened_at > query.cutoff),
            ).where(p.c.seq == 1, _in_range(p.c.opened_at, query.range))
        )
    ).one()
    return RepeatRate(int(row[0]), int(row[1]), int(row[2]))


@dataclass(frozen=True)
class LifecyclesPerCustomer:
    customers: int
    lifecycles: int
    new_customers: int
    distribution: list[tuple[str, int]]  # ("1", n), ("2", n), ("3", n), ("4+", n)

    @property
    def per_customer(self) -> float | None:
        return round(self.lifecycles / self.customers, 2) if self.customers else None

    def as_json(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "lifecycles": self.lifecycles,
            "per_customer": self.per_customer,
            "new_customers": self.new_customers,
            "returning_customers": self.customers - self.new_customers,
            "distribution": [{"lifecycles": k, "customers": n} for k, n in self.distribution],
        }


async def lifecycles_per_customer(
    session: AsyncSession, query: LoyaltyQuery, *, from_rows: bool = False
) -> LifecyclesPerCustomer:
    if session.get_bind().dialect.name == "postgresql" and not from_rows:
        return (await _summary_figures(session, query))[1]
    # A plain GROUP BY (no window): lifecycles in the range and the first one ever.
    in_range = _in_range(Lifecycle.opened_at, query.range)
    per_customer = (
        select(
            _count_if(in_range).label("n"),
            func.min(Lifecycle.opened_at).label("first_opened_at"),
        )
        .where(is_purchase(), Lifecycle.customer_id.in_(_customers_in(query.range)))
        .group_by(Lifecycle.customer_id)
        .subquery()
    )
    bucket = case((per_customer.c.n >= 4, 4), else_=per_customer.c.n)
    is_new = per_customer.c.first_opened_at >= query.range.start_utc
    rows = (
        await session.execute(
            select(bucket, func.count(), func.sum(per_customer.c.n), _count_if(is_new)).group_by(
                bucket
            )
        )
    ).all()
    by_bucket = {int(r[0]): int(r[1]) for r in rows}
    return LifecyclesPerCustomer(
        customers=sum(int(r[1]) for r in rows),
        lifecycles=sum(int(r[2] or 0) for r in rows),
        new_customers=sum(int(r[3]) for r in rows),
        distribution=[("4+" if k == 4 else str(k), by_bucket.get(k, 0)) for k in range(1, 5)],
    )


@dataclass(frozen=True)
class RenewalRate:
    periods: int
    renewed: int

    @property
    def rate(self) -> float | None:
        return _percent(self.renewed, self.periods)

    def as_json(self) -> dict[str, Any]:
        return {"periods": self.periods, "renewed": self.renewed, "rate": self.rate}


async def renewal_rate(
    session: AsyncSession, query: LoyaltyQuery, *, from_rows: bool = False
) -> RenewalRate:
    """Subscription periods that ended in the range and how many were followed by another."""
    if session.get_bind().dialect.name == "postgresql" and not from_rows:
        s = LifecycleLoyalty
        row = (
            await session.execute(
                select(func.count(), _count_if(s.renewed.is_(True))).where(
                    s.period, _in_range(s.closed_at, query.range)
                )
            )
        ).one()
        return RenewalRate(int(row[0]), int(row[1]))
    order = (Lifecycle.opened_at, Lifecycle.id)
    periods = (
        select(
            Lifecycle.closed_at,
            func.lead(Lifecycle.id)
            .over(partition_by=Lifecycle.subscription_id, order_by=order)
            .label("next_id"),
        )
        .where(
            Lifecycle.kind == LifecycleKind.subscription_period,
            Lifecycle.subscription_id.in_(
                select(Lifecycle.subscription_id)
                .where(
                    Lifecycle.kind == LifecycleKind.subscription_period,
                    _in_range(Lifecycle.closed_at, query.range),
                )
                .correlate(None)
            ),
        )
        .subquery()
    )
    row = (
        await session.execute(
            select(func.count(), _count_if(periods.c.next_id.is_not(None))).where(
                periods.c.closed_at.is_not(None), _in_range(periods.c.closed_at, query.range)
            )
        )
    ).one()
    return RenewalRate(int(row[0]), int(row[1]))


# ---- return rate by the experience of the lifecycle before -----------------------------------


@dataclass(frozen=True)
class ReturnGroup:
    key: str
    lifecycles: int
    returned: int

    @property
    def rate(self) -> float | None:
        return _percent(self.returned, self.lifecycles)

    @property
    def interval(self) -> tuple[float, float] | None:
        """95 % Wilson interval of the rate (bot/domain/stats.py)."""
        return wilson_interval(self.returned, self.lifecycles)

    def as_json(self) -> dict[str, Any]:
        interval = self.interval
        return {
            "key": self.key,
            "lifecycles": self.lifecycles,
            "returned": self.returned,
            "rate": self.rate,
            "interval": list(interval) if interval else None,
        }


@dataclass(frozen=True)
class ReturnRates:
    overall: ReturnGroup
    by_csat: list[ReturnGroup]
    by_nps: list[ReturnGroup]
    by_support: list[ReturnGroup]
    by_acquisition: list[ReturnGroup]
    pending: int

    def as_json(self) -> dict[str, Any]:
        return {
            "overall": self.overall.as_json(),
            "pending": self.pending,
            "by_csat": [g.as_json() for g in self.by_csat],
            "by_nps": [g.as_json() for g in self.by_nps],
            "by_support": [g.as_json() for g in self.by_support],
            "by_acquisition": [g.as_json() for g in self.by_acquisition],
        }


def _scores_per_lifecycle(date_range: DateRange) -> Subquery:
    """Mean CSAT and NPS of each purchase lifecycle opened in the range."""

    def mean(kind: FeedbackKind) -> ColumnElement[Any]:
        return func.avg(case((Feedback.kind == kind, Feedback.score), else_=None))

    return (
        select(
            Feedback.lifecycle_id,
            mean(FeedbackKind.csat).label("csat"),
            mean(FeedbackKind.nps).label("nps"),
        )
        .where(
            Feedback.lifecycle_id.in_(_opened_in(date_range)),
            Feedback.kind.in_((FeedbackKind.csat, FeedbackKind.nps)),
            Feedback.score.is_not(None),
        )
        .group_by(Feedback.lifecycle_id)
        .subquery("lifecycle_scores")
    )


def _escalated_lifecycles(date_range: DateRange) -> Subquery:
    """Purchase lifecycles opened in the range that had an escalation to a person.

    An escalation belongs to a lifecycle through the feedback that opened it, through the
    order its conversation was about, or (neither known) by its customer and its time inside
    the lifecycle. Joins driven by the (small) escalations table, so no per-row subquery.
    """
    in_range = Lifecycle.id.in_(_opened_in(date_range))
    # By time, an escalation of a lifecycle opened in the range is not older than the range;
    # through its feedback or its order's chat it may be (feedback or a chat moved to
    # another lifecycle or order later), and it belongs to the lifecycle all the same.
    recent = Escalation.created_at >= date_range.start_utc
    by_feedback = (
        select(Feedback.lifecycle_id.label("lifecycle_id"))
        .join(Escalation, Escalation.feedback_id == Feedback.id)
        .where(Feedback.lifecycle_id.in_(_opened_in(date_range)))
    )
    by_order = (
        select(Lifecycle.id)
        .join(Conversation, Conversation.order_id == Lifecycle.order_id)
        .join(Escalation, Escalation.conversation_id == Conversation.id)
        .where(in_range)
    )
    by_time = (
        select(Lifecycle.id)
        .join(Escalation, Escalation.customer_id == Lifecycle.customer_id)
        .outerjoin(Conversation, Conversation.id == Escalation.conversation_id)
        .where(
            recent,
            in_range,
            Escalation.feedback_id.is_(None),
            Conversation.order_id.is_(None),
            Escalation.created_at >= Lifecycle.opened_at,
            or_(Lifecycle.closed_at.is_(None), Escalation.created_at < Lifecycle.closed_at),
        )
    )
    return union(by_feedback, by_order, by_time).subquery("escalated")


def _label(value: str) -> ColumnElement[str]:
    return literal_column(f"'{value}'")  # inlined so GROUP BY matches the SELECT


def return_statement(query: LoyaltyQuery, dialect: str) -> Select[Any]:
    """(csat band, nps band, support, source, pending, lifecycles, returned) groups."""
    p = purchases(query.range)
    scores = _scores_per_lifecycle(query.range)
    escalated = _escalated_lifecycles(query.range)
    # Bands as small integers (indexes into CSAT_BANDS, NPS_BANDS, SUPPORT_BANDS): the
    # grouping sorts/hashes narrow keys.
    csat_band = case(
        (scores.c.csat.is_(None), 3), (scores.c.csat >= 4, 0), (scores.c.csat <= 2, 2), else_=1
    )
    nps_band = case(
        (scores.c.nps.is_(None), 3), (scores.c.nps >= 9, 0), (scores.c.nps >= 7, 1), else_=2
    )
    # The lifecycle's own acquisition channel, else the customer's (as on the journey map).
    source = func.coalesce(
        cast(p.c.acquisition_channel, Text),
        cast(Customer.acquisition_source, Text),
        _label(UNKNOWN_SOURCE),
    )
    support = case(
        (escalated.c.lifecycle_id.is_not(None), 2), (p.c.stage == Stage.support, 1), else_=0
    )
    inner = (
        select(
            csat_band.label("csat"),
            nps_band.label("nps"),
            support.label("support"),
            source.label("source"),
            case((p.c.opened_at > query.cutoff, 1), else_=0).label("pending"),
            case((_returned(p, query.window_days, dialect), 1), else_=0).label("returned"),
        )
        .select_from(p)
        .join(Customer, Customer.id == p.c.customer_id)
        .outerjoin(scores, scores.c.lifecycle_id == p.c.id)
        .outerjoin(escalated, escalated.c.lifecycle_id == p.c.id)
        .where(_in_range(p.c.opened_at, query.range))
        .subquery()
    )
    statement: Select[Any] = select(
        inner.c.csat,
        inner.c.nps,
        inner.c.support,
        inner.c.source,
        inner.c.pending,
        func.count(),
        func.sum(inner.c.returned),
    ).group_by(inner.c.csat, inner.c.nps, inner.c.support, inner.c.source, inner.c.pending)
    return statement


async def return_rates(
    session: AsyncSession, query: LoyaltyQuery, *, from_rows: bool = False
) -> ReturnRates:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and not from_rows:
        return (await _summary_figures(session, query))[2]
    rows = (await session.execute(return_statement(query, dialect))).all()
    return _return_rates(rows)


def _return_rates(rows: Any) -> ReturnRates:
    """Rows (csat band, nps band, support, source, pending, lifecycles, returned, ...)."""
    mature = [r for r in rows if not r[4]]
    pending = sum(int(r[5]) for r in rows if r[4])

    def groups(position: int, order: tuple[str, ...] | None) -> list[ReturnGroup]:
        totals: dict[str, list[int]] = {}
        for r in mature:
            key = order[int(r[position])] if order else str(r[position])
            total = totals.setdefault(key, [0, 0])
            total[0] += int(r[5])
            total[1] += int(r[6] or 0)
        keys = list(order) if order else sorted(totals, key=lambda k: (-totals[k][0], k))
        return [ReturnGroup(k, *totals.get(k, [0, 0])) for k in keys]

    lifecycles = sum(int(r[5]) for r in mature)
    returned = sum(int(r[6] or 0) for r in mature)
    return ReturnRates(
        overall=ReturnGroup("all", lifecycles, returned),
        by_csat=groups(0, CSAT_BANDS),
        by_nps=groups(1, NPS_BANDS),
        by_support=groups(2, SUPPORT_BANDS),
        by_acquisition=groups(3, None),
        pending=pending,
    )


# ---- PostgreSQL: the per-lifecycle summary ---------------------------------------------------


def summary_statement(query: LoyaltyQuery) -> Select[Any]:
    """One grouped scan of the range's purchase lifecycles in `lifecycle_loyalty`: the
    return-rate groups of `return_statement` (first seven columns), each with the counts
    the repeat rate and lifecycles per customer add up over the groups."""
    s = LifecycleLoyalty
    start, end = query.range.start_utc, query.range.end_utc
    # Plain columns (migration 0033): the bands and the support level are stored, and the
    # gap to the next purchase in whole days rounded up, so that "opened at most W days
    # later" (days of 24 h) is gap_days <= W.
    returned = s.gap_days <= query.window_days
    first_purchase = s.seq == 1
    # The customer's first purchase lifecycle inside the range; from it, the 2nd, 3rd and
    # 4th next tell how many of their purchases the range holds (1, 2, 3, 4+).
    first_in_range = or_(s.prev_opened_at.is_(None), s.prev_opened_at < start)
    # A plain comparison, not a CASE: the planner estimates its two values (with a CASE it
    # expected one group per row and aggregated in one process, without parallel workers).
    pending = s.opened_at > query.cutoff
    keys = (s.csat_band, s.nps_band, s.support, s.source, pending)
    statement: Select[Any] = (
        select(
            *keys,
            func.count(),
            # FILTER: ~3x faster than SUM(CASE ...) over 350 000 rows (docs/benchmarks.md).
            func.count().filter(returned),
            func.count().filter(first_purchase),
            func.count().filter(and_(first_purchase, returned)),
            func.count().filter(first_in_range),
            func.count().filter(and_(first_in_range, s.next_opened_at < end)),
            func.count().filter(and_(first_in_range, s.next2_opened_at < end)),
            func.count().filter(and_(first_in_range, s.next3_opened_at < end)),
        )
        .where(s.purchase, s.opened_at >= start, s.opened_at < end)
        .group_by(*keys)
    )
    return statement


Figures = tuple[RepeatRate, LifecyclesPerCustomer, ReturnRates]


async def _summary_figures(session: AsyncSession, query: LoyaltyQuery) -> Figures:
    """From the monthly roll-up when it answers the query exactly (nothing opened at or
    after the range's end, the window within the stored gaps), else one grouped scan of the
    summary (0033)."""
    if 0 <= query.window_days <= rollup_loyalty_monthly.MAX_GAP_DAYS:
        last = await session.scalar(
            select(func.max(LifecycleLoyalty.opened_at)).where(LifecycleLoyalty.purchase)
        )
        if last is None or last < query.range.end_utc:
            return await _monthly_figures(session, query)
    return await scan_figures(session, query)


def _month_start(moment: datetime) -> datetime:
    utc = moment.astimezone(timezone.utc)
    return datetime(utc.year, utc.month, 1, tzinfo=timezone.utc)


def _next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


_MONTHLY_RETURNS = text(
    "SELECT csat_band, nps_band, support, source, month > :pending_after AS pending, "
    "sum(n), sum(returned[:w]), sum(n) FILTER (WHERE first), "
    "sum(returned[:w]) FILTER (WHERE first) FROM lifecycle_loyalty_monthly "
    "WHERE basis = 0 AND month >= :first_month "
    "GROUP BY csat_band, nps_band, support, source, month > :pending_after"
)
_MONTHLY_CUSTOMERS = text(
    "SELECT basis, sum(n), sum(next_null), sum(next2_null), sum(next3_null) "
    "FROM lifecycle_loyalty_monthly WHERE month >= :first_month GROUP BY basis"
)
Key = tuple[Any, Any, Any, Any, bool]  # csat band, nps band, support, source, pending


async def _monthly_figures(session: AsyncSession, query: LoyaltyQuery) -> Figures:
    """The overview from `lifecycle_loyalty_monthly` (migration 0034) for the whole UTC
    months from the start's, corrected by the summary rows of the shorter side of two
    instants inside a month: the start (the rows of its month before it taken off, or
    the rows from it to the month's end added, the months read from the next one on), and
    the cut-off (a month's rows are judged or pending as a whole in the table; the rows of
    the shorter side of the cut-off inside its month move to the other). Exact when nothing
    opened at or after the range's end (the caller checks): then the customers of the
    range are counted from opened / previous-purchase counts (see
    bot/storage/rollup_loyalty_monthly.py) without comparing anything to the end."""
    s = LifecycleLoyalty
    start, cutoff = query.range.start_utc, query.cutoff
    start_month = _month_start(start)
    after_start = _next_month(start_month)
    # The start's month from the table minus its rows before the start, or from the next
    # month on plus the rows from the start: whichever reads fewer rows of the summary.
    if start - start_month <= after_start - start:
        first_month, start_rows, start_sign = start_month, (start_month, start), -1
    else:
        first_month, start_rows, start_sign = after_start, (start, after_start), 1
    returned = s.gap_days <= query.window_days
    first = s.seq == 1
    no_next = (s.next_opened_at, s.next2_opened_at, s.next3_opened_at)

    async def scan(low: ColumnElement[bool], high: ColumnElement[bool]) -> list[Any]:
        keys = (s.csat_band, s.nps_band, s.support, s.source, s.opened_at > cutoff)
        statement = (
            select(
                *keys,
                func.count(),
                func.count().filter(returned),
                func.count().filter(first),
                func.count().filter(and_(first, returned)),
                *(func.count().filter(column.is_(None)) for column in no_next),
            )
            .where(s.purchase, low, high)
            .group_by(*keys)
        )
        return list((await session.execute(statement)).all())

    totals: dict[Key, list[int]] = {}

    def add(key: Key, counts: Any, sign: int) -> None:
        total = totals.setdefault(key, [0, 0, 0, 0])
        for i in range(4):
            total[i] += sign * int(counts[i] or 0)

    opened = [0, 0, 0, 0]  # O_k: opened at or after start, without a k-th next (k = 0: all)
    previous = [0, 0, 0, 0]  # P_k: previous purchase at or after start, idem
    await session.execute(text("SET LOCAL jit = off"))
    if start_rows[0] < start_rows[1]:
        for r in await scan(s.opened_at >= start_rows[0], s.opened_at < start_rows[1]):
            add(tuple(r[:5]), r[5:9], start_sign)
            for k, position in enumerate((5, 9, 10, 11)):
                opened[k] += start_sign * int(r[position] or 0)
        row = (
            await session.execute(
                select(func.count(), *(func.count().filter(c.is_(None)) for c in no_next)).where(
                    s.purchase, s.prev_opened_at >= start_rows[0], s.prev_opened_at < start_rows[1]
                )
            )
        ).one()
        for k in range(4):
            previous[k] += start_sign * int(row[k] or 0)
    # The cut-off's month: counted judged in the table (pending_after = its month) with
    # the rows after the cut-off moved to pending, or counted pending with the rows up to
    # the cut-off moved to judged, whichever is shorter.
    cutoff_month = _month_start(cutoff)
    after_cutoff = _next_month(cutoff_month)
    pending_after = cutoff_month.date()
    if cutoff_month >= first_month:
        if cutoff - cutoff_month <= after_cutoff - cutoff:
            pending_after -= timedelta(days=1)  # the month pending as a whole
            moved = await scan(s.opened_at >= cutoff_month, s.opened_at <= cutoff)
        else:
            moved = await scan(s.opened_at > cutoff, s.opened_at < after_cutoff)
        for r in moved:
            add((*r[:4], not r[4]), r[5:9], -1)
            add(tuple(r[:5]), r[5:9], 1)
    months = {"first_month": first_month.date(), "pending_after": pending_after}
    for r in await session.execute(_MONTHLY_RETURNS, {**months, "w": query.window_days + 1}):
        add(tuple(r[:5]), r[5:9], 1)
    customers_rows = await session.execute(_MONTHLY_CUSTOMERS, {"first_month": first_month.date()})
    for basis, *counts in customers_rows:
        target = opened if basis == 0 else previous
        for k in range(4):
            target[k] += int(counts[k] or 0)
    await session.execute(text("SET LOCAL jit = DEFAULT"))
    # (csat, nps, support, source, pending, lifecycles, returned, first, first returned);
    # a key whose rows add up to no lifecycle is not there (as in the raw rows' groups).
    rows = [(*key, *counts) for key, counts in totals.items() if counts[0]]
    customers = opened[0] - previous[0]
    # Customers with at least 1, 2, 3, 4 purchases in the range.
    at_least = [customers] + [customers - (opened[k] - previous[k]) for k in (1, 2, 3)]

    def total(position: int, pending: bool | None = None) -> int:
        return sum(int(r[position]) for r in rows if pending is None or r[4] == pending)

    repeat = RepeatRate(total(7, False), total(8, False), total(7, True))
    lifecycles = LifecyclesPerCustomer(
        customers=at_least[0],
        lifecycles=total(5),
        new_customers=total(7),
        distribution=[
            ("1", at_least[0] - at_least[1]),
            ("2", at_least[1] - at_least[2]),
            ("3", at_least[2] - at_least[3]),
            ("4+", at_least[3]),
        ],
    )
    return repeat, lifecycles, _return_rates(rows)


async def scan_figures(session: AsyncSession, query: LoyaltyQuery) -> Figures:
    """One grouped scan of the range's summary rows (migration 0033; any range)."""
    # Planner settings for this one statement (EXPLAIN ANALYZE, 2 years of 350 000
    # lifecycles): it cannot estimate the few groups of the keys (~200 of them), so it
    # sorted every row to disk instead of hashing; and JIT compiling took ~650 ms of a
    # statement that runs in less. Both back to the session's defaults right after (an
    # error rolls the transaction back, and SET LOCAL with it). A custom plan every time:
    # asyncpg prepares the statement, and from its sixth run PostgreSQL used a generic plan
    # that cannot estimate the pending comparison on a bound cut-off, ran one process
    # instead of parallel workers and took twice as long (bench/loyalty.py, 2 years).
    settings = ("jit", "enable_sort", "plan_cache_mode")
    await session.execute(text("SET LOCAL jit = off"))
    await session.execute(text("SET LOCAL enable_sort = off"))
    await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    rows = (await session.execute(summary_statement(query))).all()
    for name in settings:
        await session.execute(text(f"SET LOCAL {name} = DEFAULT"))

    def total(position: int, pending: bool | None = None) -> int:
        return sum(int(r[position] or 0) for r in rows if pending is None or r[4] == pending)

    # Repeat rate: first purchases old enough to judge (not pending), and the pending ones.
    repeat = RepeatRate(total(7, False), total(8, False), total(7, True))
    at_least = [total(9), total(10), total(11), total(12)]  # customers with >= 1..4
    lifecycles = LifecyclesPerCustomer(
        customers=at_least[0],
        lifecycles=total(5),
        new_customers=total(7),  # a first purchase is the first in any range
        distribution=[
            ("1", at_least[0] - at_least[1]),
            ("2", at_least[1] - at_least[2]),
            ("3", at_least[2] - at_least[3]),
            ("4+", at_least[3]),
        ],
    )
    return repeat, lifecycles, _return_rates(rows)


# ---- all of it -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoyaltyOverview:
    query: LoyaltyQuery
    repeat: RepeatRate
    lifecycles: LifecyclesPerCustomer
    renewal: RenewalRate
    returns: ReturnRates

    def as_json(self) -> dict[str, Any]:
        return {
            "range": self.query.range.as_json(),
            "as_of": self.query.as_of.isoformat(),
            "window_days": self.query.window_days,
            "repeat": self.repeat.as_json(),
            "lifecycles": self.lifecycles.as_json(),
            "renewal": self.renewal.as_json(),
            "return_rate": self.returns.as_json(),
        }


async def overview(
    session: AsyncSession, query: LoyaltyQuery, *, from_rows: bool = False
) -> LoyaltyOverview:
    """Everything; `from_rows` (PostgreSQL) reads the raw rows instead of the summary (the
    tests compare the two)."""
    if session.get_bind().dialect.name == "postgresql" and not from_rows:
        repeat, lifecycles, returns = await _summary_figures(session, query)
        return LoyaltyOverview(
            query, repeat, lifecycles, await renewal_rate(session, query), returns
        )
    return LoyaltyOverview(
        query,
        await repeat_rate(session, query, from_rows=True),
        await lifecycles_per_customer(session, query, from_rows=True),
        await renewal_rate(session, query, from_rows=True),
        await return_rates(session, query, from_rows=True),
    )


# ---- cohorts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CohortCell:
    offset: int
    customers: int
    percent: float | None

    def as_json(self) -> dict[str, Any]:
        return {"offset": self.offset, "customers": self.customers, "percent": self.percent}


@dataclass(frozen=True)
class Cohort:
    month: date
    customers: int
    cells: list[CohortCell | None]  # None: that month has not started yet

    def as_json(self) -> dict[str, Any]:
        return {
            "month": self.month.strftime("%Y-%m"),
            "customers": self.customers,
            "cells": [c.as_json() if c else None for c in self.cells],
        }


@dataclass(frozen=True)
class CohortTable:
    range: DateRange
    as_of: datetime
    months: int
    cohorts: list[Cohort]
    # Per offset: customers active / customers of the cohorts that reached that month.
    average: list[CohortCell | None]

    def as_json(self) -> dict[str, Any]:
        return {
            "range": self.range.as_json(),
            "as_of": self.as_of.isoformat(),
            "months": self.months,
            "cohorts": [c.as_json() for c in self.cohorts],
            "average": [c.as_json() if c else None for c in self.average],
        }


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


async def cohorts(
    session: AsyncSession,
    date_range: DateRange,
    as_of: datetime,
    months: int = DEFAULT_COHORT_MONTHS,
) -> CohortTable:
    """Retention table: cohorts by month of first purchase (first purchase in the range)."""
    dialect = session.get_bind().dialect.name
    as_of_local = as_of.astimezone(date_range.tz).date()
    # The buckets must be right for activity after the range too (up to `as_of`).
    span = DateRange(date_range.start, max(date_range.end, as_of_local), date_range.tz)
    p = purchases(date_range)
    inner = (
        select(
            bucket_expression(p.c.first_opened_at, dialect, span, "month").label("cohort"),
            bucket_expression(p.c.opened_at, dialect, span, "month").label("active"),
            p.c.customer_id,
        )
        .where(_in_range(p.c.first_opened_at, date_range), p.c.opened_at < as_of)
        .subquery()
    )
    rows = (
        await session.execute(
            select(
                inner.c.cohort, inner.c.active, func.count(func.distinct(inner.c.customer_id))
            ).group_by(inner.c.cohort, inner.c.active)
        )
    ).all()
    active: dict[date, dict[int, int]] = {}
    for cohort_value, active_value, n in rows:
        cohort_month = as_date(cohort_value)
        offset = _month_index(as_date(active_value)) - _month_index(cohort_month)
        if 0 <= offset < months:
            active.setdefault(cohort_month, {})[offset] = int(n)
    last = _month_index(as_of_local)
    table = []
    sums = [[0, 0] for _ in range(months)]
    for month in sorted(active):
        size = active[month].get(0, 0)
        cells: list[CohortCell | None] = []
        for k in range(months):
            if _month_index(month) + k > last:
                cells.append(None)
                continue
            n = active[month].get(k, 0)
            cells.append(CohortCell(k, n, _percent(n, size)))
            sums[k][0] += n
            sums[k][1] += size
        table.append(Cohort(month, size, cells))
    average = [
        CohortCell(k, n, _percent(n, size)) if size else None for k, (n, size) in enumerate(sums)
    ]
    return CohortTable(date_range, as_of, months, table, average)
