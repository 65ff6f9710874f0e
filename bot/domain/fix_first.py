"""What to fix first: the journey map's pitfalls and negative themes ranked by impact.

docs/dashboard.md ("What to fix first") has the formula; in short, for a candidate c:

* its **affected journeys** J: journeys (lifecycles) with feedback in the range that
  - for a **pitfall** cell (stage, or stage x channel, with a CSAT or NPS pitfall): have a
    feedback row in that cell;
  - for a **negative theme** T at stage S: have a negative comment (VADER < -0.05) with
    theme T at stage S;
* the **rest**: every other journey with feedback in the range (same filters);
* shortfalls, how much worse J is than the rest (0 when J is not worse, or when either
  side rests on fewer than `min_answers` answers / journeys):
  - CSAT: (CSAT %(rest) - CSAT %(J)) / 100, over the CSAT answers of those journeys;
  - NPS: (NPS(rest) - NPS(J)) / 200 (NPS spans 200 points);
  - return rate: (R(rest) - R(J)) / 100, R = share of journeys opened at least
    `window_days` before `as_of` whose customer opened another purchase journey (order or
    subscription period) within `window_days` after it;
* **impact** = |J| x (CSAT shortfall + NPS shortfall + return shortfall): journeys affected,
  weighted by how much worse they fare. Ranked by impact, then |J|, then key.

Drop-off pitfalls are not ranked (the customers who left gave no scores to compare); they
stay on the map. A theme needs at least `min_journeys` affected journeys to be listed.

Four GROUP BY queries (per-journey scores, cells, negative themes, next journey); Python
only adds the per-journey rows up per candidate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import Integer, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.domain.analysis import NEGATIVE
from bot.domain.enums import FeedbackKind
from bot.domain.feedback_query import THEMES, FeedbackFilter, theme_condition
from bot.domain.journey import JourneyMap, Pitfall
from bot.domain.metrics import month_split
from bot.storage import rollup_fix
from bot.storage.models import Feedback, JourneyFix, JourneyFixDaily, JourneyFixMonthly, Lifecycle

TOP = 10
SCORED_METRICS = ("csat", "nps")


@dataclass
class _Journey:
    csat_n: int = 0
    csat_good: int = 0
    nps_n: int = 0
    nps_net: int = 0  # promoters - detractors
    eligible: bool = False  # opened at least window_days before as_of
    returned: bool = False


_TOTALS = ("journeys", "csat_n", "csat_good", "nps_n", "nps_net", "eligible", "returned")


@dataclass
class _Totals:
    journeys: int = 0
    csat_n: int = 0
    csat_good: int = 0
    nps_n: int = 0
    nps_net: int = 0
    eligible: int = 0
    returned: int = 0

    def add(self, j: _Journey, sign: int = 1) -> None:
        self.journeys += sign
        self.csat_n += sign * j.csat_n
        self.csat_good += sign * j.csat_good
        self.nps_n += sign * j.nps_n
        self.nps_net += sign * j.nps_net
        self.eligible += sign * int(j.eligible)
        self.returned += sign * int(j.eligible and j.returned)

    def minus(self, other: _Totals) -> _Totals:
        return _Totals(
            self.journeys - other.journeys,
            self.csat_n - other.csat_n,
            self.csat_good - other.csat_good,
            self.nps_n - other.nps_n,
            self.nps_net - other.nps_net,
            self.eligible - other.eligible,
            self.returned - other.returned,
        )


@dataclass(frozen=True)
class Effect:
    """One metric of the affected journeys against the rest (percent / NPS points)."""

    group: float | None
    group_n: int
    rest: float | None
    rest_n: int
    shortfall: float  # 0..1, the share of the metric's span J is worse by

    def as_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "group_n": self.group_n,
            "rest": self.rest,
            "rest_n": self.rest_n,
            "shortfall": round(self.shortfall, 4),
        }


def _effect(
    g_num: int, g_n: int, r_num: int, r_n: int, scale: float, span: float, least: int
) -> Effect:
    group = scale * g_num / g_n if g_n else None
    rest = scale * r_num / r_n if r_n else None
    shortfall = 0.0
    if group is not None and rest is not None and g_n >= least and r_n >= least:
        shortfall = max(0.0, (rest - group) / span)
    return Effect(
        None if group is None else round(group, 1),
        g_n,
        None if rest is None else round(rest, 1),
        r_n,
        shortfall,
    )


@dataclass(frozen=True)
class FixItem:
    kind: str  # "pitfall" or "theme"
    stage: str
    channel: str | None
    theme: str | None
    metrics: tuple[str, ...]  # the pitfall's metrics (csat, nps); () for a theme
    journeys: int
    csat: Effect
    nps: Effect
    return_rate: Effect
    impact: float

    @property
    def key(self) -> str:
        return ":".join((self.kind, self.stage, self.channel or self.theme or ""))

    def filter(self) -> dict[str, str]:
        """Explorer filters showing the feedback behind the item."""
        found = {"stage": self.stage}
        if self.channel:
            found["channel"] = self.channel
        if self.theme:
            found.update(theme=self.theme, sentiment="negative")
        return found

    def insight(self) -> dict[str, str]:
        """Query string of the insight board preselecting this item."""
        if self.theme:
            return {"origin": "theme", "theme": self.theme}
        return {
            "origin": "pitfall",
            "stage": self.stage,
            "channel": self.channel or "",
            "metric": self.metrics[0],
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "stage": self.stage,
            "channel": self.channel,
            "theme": self.theme,
            "metrics": list(self.metrics),
            "journeys": self.journeys,
            "csat": self.csat.as_json(),
            "nps": self.nps.as_json(),
            "return_rate": self.return_rate.as_json(),
            "impact": self.impact,
            "filter": self.filter(),
            "insight": self.insight(),
        }


@dataclass(frozen=True)
class FixRules:
    as_of: datetime
    min_answers: int = 10  # DASHBOARD_MIN_ANSWERS: both sides of an effect need this many
    min_journeys: int = 5  # PITFALL_MIN_RESPONSES: a theme needs this many journeys
    window_days: int = 90  # loyalty's default return window
    top: int = TOP


def _opened_in(flt: FeedbackFilter) -> Any:
    """The journeys ranked: opened in the range (in its time zone)."""
    return and_(Lifecycle.opened_at >= flt.range.start_utc, Lifecycle.opened_at < flt.range.end_utc)


def _rows(flt: FeedbackFilter) -> list[Any]:
    """The journeys' feedback rows the figures read: any date, the other filters applied."""
    return [*flt.conditions(dated=False), Feedback.lifecycle_id.is_not(None), _opened_in(flt)]


async def _journeys(
    session: AsyncSession, flt: FeedbackFilter, rules: FixRules
) -> dict[int, _Journey]:
    kind, score = Feedback.kind, Feedback.score
    is_csat = kind == FeedbackKind.csat
    is_nps = kind == FeedbackKind.nps

    def total(condition: Any, value: Any = 1) -> Any:
        return func.sum(case((condition, value), else_=0)).cast(Integer)

    rows = await session.execute(
        select(
            Feedback.lifecycle_id,
            total(is_csat & score.is_not(None)),
            total(is_csat & (score >= 4)),
            total(is_nps & score.is_not(None)),
            total(is_nps & (score >= 9)) - total(is_nps & (score <= 6)),
        )
        .join(Lifecycle, Lifecycle.id == Feedback.lifecycle_id)
        .where(*_rows(flt))
        .group_by(Feedback.lifecycle_id)
    )
    found = {
        int(lid): _Journey(int(a or 0), int(b or 0), int(c or 0), int(d or 0))
        for lid, a, b, c, d in rows
    }
    if not found:
        return found
    # The next purchase journey of the same customer (loyalty's "return").
    window = timedelta(days=rules.window_days)
    here, later = Lifecycle, aliased(Lifecycle)
    ids = (
        select(Feedback.lifecycle_id)
        .join(Lifecycle, Lifecycle.id == Feedback.lifecycle_id)
        .where(*_rows(flt))
        .distinct()
        .scalar_subquery()
    )
    purchase = or_(later.order_id.is_not(None), later.subscription_id.is_not(None))
    nxt = await session.execute(
        select(here.id, here.opened_at, func.min(later.opened_at))
        .outerjoin(
            later,
            and_(
                later.customer_id == here.customer_id,
                later.opened_at > here.opened_at,
                purchase,
            ),
        )
        .where(here.id.in_(ids))
        .group_by(here.id, here.opened_at)
    )
    for lid, opened, next_opened in nxt:
        journey = found.get(int(lid))
        if journey is None:
            continue
        opened = _aware(opened)
        journey.eligible = opened + window <= rules.as_of
        journey.returned = next_opened is not None and _aware(next_opened) <= opened + window
    return found


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


async def _cells(session: AsyncSession, flt: FeedbackFilter) -> dict[tuple[str, str], set[int]]:
    rows = await session.execute(
        select(Feedback.lifecycle_id, Feedback.stage, Feedback.channel)
        .join(Lifecycle, Lifecycle.id == Feedback.lifecycle_id)
        .where(*_rows(flt))
        .distinct()
    )
    found: dict[tuple[str, str], set[int]] = {}
    for lid, stage, channel in rows:
        found.setdefault((stage.value, channel.value), set()).add(int(lid))
    return found


async def _themes(session: AsyncSession, flt: FeedbackFilter) -> dict[tuple[str, str], set[int]]:
    columns = [
        func.max(case((theme_condition(theme), 1), else_=0)).cast(Integer) for theme in THEMES
    ]
    rows = await session.execute(
        select(Feedback.lifecycle_id, Feedback.stage, *columns)
        .join(Lifecycle, Lifecycle.id == Feedback.lifecycle_id)
        .where(*_rows(flt), Feedback.sentiment < NEGATIVE)
        .group_by(Feedback.lifecycle_id, Feedback.stage)
    )
    found: dict[tuple[str, str], set[int]] = {}
    for row in rows:
        for theme, flag in zip(THEMES, row[2:], strict=True):
            if flag:
                found.setdefault((row[1].value, theme), set()).add(int(row[0]))
    return found


def rollup_answers(flt: FeedbackFilter, rules: FixRules) -> bool:
    """The roll-up holds every journey's figures over all its feedback and the default return
    window: it answers any date range (in any time zone) without other filters."""
    unfiltered = FeedbackFilter(flt.range)
    return flt == unfiltered and rules.window_days == rollup_fix.RETURN_DAYS


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def _summed(table: type[JourneyFixMonthly] | type[JourneyFixDaily], old: Any) -> Any:
    """The query of `_TOTALS` by key over a roll-up table; `old` says which rows' journeys
    are old enough to count as eligible (the caller adds the rows' range)."""
    return select(
        table.key,
        func.sum(table.journeys),
        func.sum(table.csat_n),
        func.sum(table.csat_good),
        func.sum(table.nps_n),
        func.sum(table.nps_net),
        func.sum(case((old, table.journeys), else_=0)),
        func.sum(case((old, table.returned), else_=0)),
    ).group_by(table.key)


async def _rolled(
    session: AsyncSession, flt: FeedbackFilter, rules: FixRules
) -> dict[str, _Totals]:
    """Every key's sums over the journeys opened in the range: the whole UTC days from
    journey_fix_daily, the journeys of the partial UTC days at the range's ends (a range in
    another time zone) and of the day the return window's cut-off falls in one by one from
    journey_fix (by `opened_at`)."""
    cutoff = rules.as_of - timedelta(days=rules.window_days)
    cut_day = cutoff.astimezone(timezone.utc).date()
    start, end = flt.range.start_utc, flt.range.end_utc
    first = start.date() if start == _midnight(start.date()) else start.date() + timedelta(days=1)
    last = end.date() - timedelta(days=1)  # end is exclusive
    singles: list[tuple[datetime, datetime]] = []
    if first > last:
        singles.append((start, end))
    else:
        if start < _midnight(first):
            singles.append((start, _midnight(first)))
        if end > _midnight(last + timedelta(days=1)):
            singles.append((_midnight(last + timedelta(days=1)), end))
        if first <= cut_day <= last:
            singles.append((_midnight(cut_day), _midnight(cut_day + timedelta(days=1))))
    found: dict[str, _Totals] = {}

    def add(rows: Any) -> None:
        for key, *values in rows:
            totals = found.setdefault(str(key), _Totals())
            for name, value in zip(_TOTALS, values, strict=True):
                setattr(totals, name, getattr(totals, name) + int(value or 0))

    if first <= last:
        # Whole months from journey_fix_monthly, except the cut-off day's month (eligibility
        # changes inside it); the other days from journey_fix_daily.
        spans, months = month_split(first, last)
        cut_month = cut_day.replace(day=1)
        whole: list[tuple[date, date]] = []
        if months is not None:
            m0, m1 = months
            if m0 <= cut_month < m1:
                after = (cut_month + timedelta(days=32)).replace(day=1)
                whole = [(a, b) for a, b in ((m0, cut_month), (after, m1)) if a < b]
                spans.append((cut_month, after - timedelta(days=1)))
            else:
                whole = [(m0, m1)]
        m = JourneyFixMonthly
        if whole:
            add(
                await session.execute(
                    _summed(m, m.month < cut_month).where(
                        or_(*(and_(m.month >= a, m.month < b) for a, b in whole))
                    )
                )
            )
        d = JourneyFixDaily
        if spans:
            add(
                await session.execute(
                    _summed(d, d.day < cut_day).where(
                        or_(*(and_(d.day >= a, d.day <= b) for a, b in spans)), d.day != cut_day
                    )
                )
            )
    if singles:
        j = JourneyFix
        old = j.opened_at <= cutoff
        windows = [
            and_(
                j.day >= a.date(),
                j.day <= (b - timedelta(microseconds=1)).date(),
                j.opened_at >= a,
                j.opened_at < b,
            )
            for a, b in singles
        ]
        add(
            await session.execute(
                select(
                    j.key,
                    func.count(),
                    func.sum(j.csat_n),
                    func.sum(j.csat_good),
                    func.sum(j.nps_n),
                    func.sum(j.nps_net),
                    func.sum(case((old, 1), else_=0)),
                    func.sum(case((old, j.returned), else_=0)),
                )
                .where(or_(*windows))
                .group_by(j.key)
            )
        )
    return found


def _members(members: Iterable[int], journeys: dict[int, _Journey]) -> _Totals:
    group = _Totals()
    for lid in members:
        group.add(journeys[lid])
    return group


def _item(
    kind: str,
    stage: str,
    channel: str | None,
    theme: str | None,
    metrics: tuple[str, ...],
    group: _Totals,
    everyone: _Totals,
    rules: FixRules,
) -> FixItem:
    rest = everyone.minus(group)
    least = rules.min_answers
    csat = _effect(group.csat_good, group.csat_n, rest.csat_good, rest.csat_n, 100, 100, least)
    nps = _effect(group.nps_net, group.nps_n, rest.nps_net, rest.nps_n, 100, 200, least)
    ret = _effect(group.returned, group.eligible, rest.returned, rest.eligible, 100, 100, least)
    impact = round(group.journeys * (csat.shortfall + nps.shortfall + ret.shortfall), 1)
    return FixItem(kind, stage, channel, theme, metrics, group.journeys, csat, nps, ret, impact)


def _pitfall_cells(
    journey: JourneyMap | Sequence[Pitfall],
) -> dict[tuple[str, str | None], list[str]]:
    found: dict[tuple[str, str | None], list[str]] = {}
    pitfalls = journey.pitfalls if isinstance(journey, JourneyMap) else journey
    for pitfall in pitfalls:
        if pitfall.metric in SCORED_METRICS:
            metrics = found.setdefault((pitfall.stage, pitfall.channel), [])
            if pitfall.metric not in metrics:
                metrics.append(pitfall.metric)
    return found


async def fix_first(
    session: AsyncSession,
    flt: FeedbackFilter,
    journey: JourneyMap | Sequence[Pitfall],
    rules: FixRules,
) -> list[FixItem]:
    """The journey map's CSAT/NPS pitfalls (the map, or `journey.scored_pitfalls`) and the
    negative themes by stage, by impact, among the journeys opened in the range."""
    if rollup_answers(flt, rules):
        items = await _from_rollup(session, flt, journey, rules)
    else:
        items = await _from_rows(session, flt, journey, rules)
    items.sort(key=lambda i: (-i.impact, -i.journeys, i.key))
    return items[: rules.top]


async def _from_rollup(
    session: AsyncSession,
    flt: FeedbackFilter,
    journey: JourneyMap | Sequence[Pitfall],
    rules: FixRules,
) -> list[FixItem]:
    totals = await _rolled(session, flt, rules)
    everyone = totals.get("all", _Totals())
    items: list[FixItem] = []
    for (stage, channel), metrics in _pitfall_cells(journey).items():
        key = f"cell:{stage}:{channel}" if channel else f"stage:{stage}"
        group = totals.get(key, _Totals())
        items.append(_item("pitfall", stage, channel, None, tuple(metrics), group, everyone, rules))
    for key, group in totals.items():
        if not key.startswith("theme:"):
            continue
        _theme, stage, theme = key.split(":", 2)
        if theme in THEMES and group.journeys >= rules.min_journeys:
            items.append(_item("theme", stage, None, theme, (), group, everyone, rules))
    return items


async def _from_rows(
    session: AsyncSession,
    flt: FeedbackFilter,
    journey: JourneyMap | Sequence[Pitfall],
    rules: FixRules,
) -> list[FixItem]:
    journeys = await _journeys(session, flt, rules)
    everyone = _members(journeys, journeys)
    cells = await _cells(session, flt)
    items: list[FixItem] = []
    for (stage, channel), metrics in _pitfall_cells(journey).items():
        if channel is None:
            members: set[int] = set()
            for (s, _c), ids in cells.items():
                if s == stage:
                    members |= ids
        else:
            members = cells.get((stage, channel), set())
        group = _members((lid for lid in members if lid in journeys), journeys)
        items.append(_item("pitfall", stage, channel, None, tuple(metrics), group, everyone, rules))
    for (stage, theme), ids in (await _themes(session, flt)).items():
        if len(ids) >= rules.min_journeys:
            items.append(
                _item("theme", stage, None, theme, (), _members(ids, journeys), everyone, rules)
            )
    return items
