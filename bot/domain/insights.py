"""The insight board: CX managers turn feedback into insights and track what was done.

* An insight starts from a **theme** (its negative comments in a date range), a **pitfall**
  of the journey map (the low scores behind it) or **hand-picked** feedback rows; those rows
  are linked to it (`InsightFeedback`, its evidence) and their customers may be told.
* Its **criteria** (explorer filters without dates, e.g. `{"theme": "delivery"}`) define the
  matching feedback stream: volume and weekly trend on the board, and the before/after
  comparison once applied: the same metrics for the time since `applied_at` and for a
  period of the same length right before it. Both windows are at least
  `CompareRules.min_days` (INSIGHT_MIN_WINDOW_DAYS, 14) long: until that much time has
  passed since applying it is "too early to tell". CSAT % and the negative share are
  compared by a two-proportion z-test, NPS by a z-test on the difference of the means of
  the +1/0/-1 scores (bot/domain/stats.py, docs/dashboard.md); a change is called better or
  worse only at p < 0.05 with at least `min_answers` answers on each side.
* Status flow new -> accepted -> in_progress -> applied, or wont_do from any open status
  (wont_do can be reopened to new); every change is one conditional UPDATE (two managers at
  once: one wins, the other gets a conflict) plus an audit row.
* Telling the customers: when applied with a message, each customer with linked feedback
  gets it once, in their next chat, for `NOTICE_DAYS`. The unique (insight, customer) key
  of `InsightNotice` makes "once" hold across tabs and web replicas: the notice and the
  transcript message are written in one transaction, and the loser's insert fails.

The functions flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import (
    Integer,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from bot.domain import audit, feedback_query
from bot.domain.analysis import NEGATIVE
from bot.domain.enums import (
    Channel,
    FeedbackKind,
    InsightOrigin,
    InsightStatus,
    InsightTeam,
    MessageSender,
    Stage,
)
from bot.domain.errors import Conflict, InvalidInput, NotFound
from bot.domain.feedback_query import DateRange, FeedbackFilter
from bot.domain.journey import Pitfall
from bot.domain.metrics import (
    MetricCounts,
    as_date,
    bucket_expression,
    counts_from,
    feedback_aggregates,
)
from bot.domain.stats import ProportionTest, nps_difference_test, two_proportion_test
from bot.storage import repositories
from bot.storage.models import (
    AuditLog,
    Customer,
    Feedback,
    Insight,
    InsightFeedback,
    InsightNotice,
    Message,
)

TRANSITIONS: dict[InsightStatus, frozenset[InsightStatus]] = {
    InsightStatus.new: frozenset({InsightStatus.accepted, InsightStatus.wont_do}),
    InsightStatus.accepted: frozenset({InsightStatus.in_progress, InsightStatus.wont_do}),
    InsightStatus.in_progress: frozenset({InsightStatus.applied, InsightStatus.wont_do}),
    InsightStatus.applied: frozenset(),
    InsightStatus.wont_do: frozenset({InsightStatus.new}),
}
BOARD_ORDER = (
    InsightStatus.new,
    InsightStatus.accepted,
    InsightStatus.in_progress,
    InsightStatus.applied,
    InsightStatus.wont_do,
)
# Only these filters describe what an insight is about (dates are the comparison's job).
CRITERIA_KEYS = feedback_query.CRITERIA_KEYS
PITFALL_METRICS = ("csat", "nps", "dropoff")
TEXT_KEYS = frozenset({"theme", "sentiment", "q"})
SCORE_KINDS = (FeedbackKind.csat, FeedbackKind.nps, FeedbackKind.ces)
MAX_TITLE = 200
MAX_NOTE = 5000
MAX_MESSAGE = 500
MAX_PICKED = 500
MAX_LINKED = 5000
NOTICE_DAYS = 90
DEFAULT_COMPARE_DAYS = 90
TREND_WEEKS = 12
MAX_BOARD = 500


# ---- input -----------------------------------------------------------------------------------


def _text(body: Mapping[str, Any], name: str, limit: int, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidInput(
            f"'{name}' must be a non-empty string."
            if required
            else f"'{name}' must be a string or null."
        )
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(f"'{name}' is limited to {limit} characters.")
    return value or None


def _team(value: Any) -> InsightTeam:
    try:
        return InsightTeam(value)
    except ValueError as exc:
        raise InvalidInput(
            f"'owner_team' must be one of: {', '.join(t.value for t in InsightTeam)}."
        ) from exc


def parse_criteria(raw: Any) -> dict[str, str]:
    """Validated explorer filters (no dates); `InvalidInput` names the bad one."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput("'criteria' must be an object of explorer filters.")
    criteria: dict[str, str] = {}
    for key, value in raw.items():
        if key not in CRITERIA_KEYS:
            raise InvalidInput(f"'criteria' may only use: {', '.join(CRITERIA_KEYS)}.")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise InvalidInput(f"'criteria.{key}' must be a string.")
        if str(value) != "":
            criteria[key] = str(value)
    feedback_query.parse_filter(criteria)  # validates every value
    return dict(sorted(criteria.items()))


def criteria_filter(criteria: Mapping[str, str], date_range: DateRange) -> FeedbackFilter:
    return feedback_query.parse_filter(criteria).with_range(date_range)


def matching(criteria: Mapping[str, str], date_range: DateRange) -> ColumnElement[bool]:
    """The feedback an insight is about, in a range.

    Themes, sentiment and free text exist on comments only, so a text criterion also takes
    the scores given in the same survey as a matching comment: "delivery" insights then
    have a delivery CSAT before and after, not just a sentiment.
    """
    flt = criteria_filter(criteria, date_range)
    own = and_(*flt.conditions())
    if not TEXT_KEYS & criteria.keys() or {"kind", "score_min", "score_max"} & criteria.keys():
        return own  # no text criterion, or the manager chose the kinds / scores explicitly
    surveys = (
        select(Feedback.survey_dispatch_id)
        .where(*flt.conditions(), Feedback.survey_dispatch_id.is_not(None))
        .correlate(None)
    )
    same_survey = and_(
        *feedback_query.FeedbackFilter(range=date_range).conditions(),
        Feedback.kind.in_(SCORE_KINDS),
        Feedback.survey_dispatch_id.in_(surveys),
    )
    return or_(own, same_survey)


@dataclass(frozen=True)
class PitfallRef:
    stage: Stage
    channel: Channel | None
    metric: str

    def pitfall(self) -> Pitfall:
        channel = self.channel.value if self.channel else None
        return Pitfall(self.stage.value, channel, self.metric, 0.0, 0.0)


def parse_pitfall(raw: Any) -> PitfallRef:
    if not isinstance(raw, dict):
        raise InvalidInput("'pitfall' must be an object {stage, channel, metric}.")
    try:
        stage = Stage(raw.get("stage"))
        channel = Channel(raw["channel"]) if raw.get("channel") else None
    except ValueError as exc:
        raise InvalidInput("'pitfall' needs a journey stage and an optional channel.") from exc
    metric = raw.get("metric")
    if metric not in PITFALL_METRICS:
        raise InvalidInput(f"'pitfall.metric' must be one of: {', '.join(PITFALL_METRICS)}.")
    return PitfallRef(stage, channel, str(metric))


@dataclass(frozen=True)
class Draft:
    """A new insight as the CX manager described it (validated)."""

    title: str
    owner_team: InsightTeam
    origin: InsightOrigin
    note: str | None = None
    customer_message: str | None = None
    criteria: dict[str, str] | None = None  # None: derived from the origin
    theme: str | None = None
    pitfall: PitfallRef | None = None
    feedback_ids: tuple[int, ...] = ()
    # Theme and pitfall insights link the matching feedback of this range.
    range: DateRange | None = None


def parse_draft(body: Mapping[str, Any], today: date | None = None) -> Draft:
    title = _text(body, "title", MAX_TITLE, required=True)
    assert title is not None
    try:
        origin = InsightOrigin(body.get("origin"))
    except ValueError as exc:
        raise InvalidInput("'origin' must be one of: theme, pitfall, feedback.") from exc
    criteria = parse_criteria(body["criteria"]) if body.get("criteria") is not None else None
    theme = pitfall = None
    ids: tuple[int, ...] = ()
    date_range = None
    if origin is InsightOrigin.feedback:
        raw_ids = body.get("feedback_ids")
        if (
            not isinstance(raw_ids, list)
            or not raw_ids
            or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in raw_ids)
        ):
            raise InvalidInput("'feedback_ids' must be a non-empty list of feedback ids.")
        if len(raw_ids) > MAX_PICKED:
            raise InvalidInput(f"At most {MAX_PICKED} feedback rows can be picked.")
        ids = tuple(dict.fromkeys(raw_ids))
    else:
        date_range = feedback_query.parse_range(
            _opt_str(body, "from"), _opt_str(body, "to"), _opt_str(body, "tz"), today
        )
        if origin is InsightOrigin.theme:
            theme = body.get("theme")
            if theme not in feedback_query.THEMES:
                raise InvalidInput(f"'theme' must be one of: {', '.join(feedback_query.THEMES)}.")
        else:
            pitfall = parse_pitfall(body.get("pitfall"))
    return Draft(
        title=title,
        owner_team=_team(body.get("owner_team")),
        origin=origin,
        note=_text(body, "note", MAX_NOTE),
        customer_message=_text(body, "customer_message", MAX_MESSAGE),
        criteria=criteria,
        theme=theme,
        pitfall=pitfall,
        feedback_ids=ids,
        range=date_range,
    )


def _opt_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"'{name}' must be a string.")
    return value


# ---- create, edit, move, delete ------------------------------------------------------------


def _link_filter(draft: Draft, criteria: dict[str, str]) -> FeedbackFilter:
    """Which feedback of the draft's range is the evidence of a theme or pitfall insight."""
    assert draft.range is not None
    if draft.pitfall is not None:
        found = draft.pitfall.pitfall().filter()
        if draft.pitfall.metric == "dropoff":
            found["sentiment"] = "negative"
        return feedback_query.parse_filter(found).with_range(draft.range)
    return criteria_filter({**criteria, "sentiment": "negative"}, draft.range)


def _origin_criteria(draft: Draft) -> dict[str, str]:
    if draft.theme is not None:
        return {"theme": draft.theme}
    if draft.pitfall is not None:
        found = {"stage": draft.pitfall.stage.value}
        if draft.pitfall.channel is not None:
            found["channel"] = draft.pitfall.channel.value
        return found
    return {}


async def _picked_criteria(session: AsyncSession, ids: Sequence[int]) -> dict[str, str]:
    """What hand-picked rows have in common: their one stage, and a theme most of them share."""
    rows = (
        await session.execute(select(Feedback.stage, Feedback.themes).where(Feedback.id.in_(ids)))
    ).all()
    criteria: dict[str, str] = {}
    stages = {stage for stage, _ in rows}
    if len(stages) == 1:
        criteria["stage"] = next(iter(stages)).value
    themes = Counter(theme for _, row_themes in rows for theme in set(row_themes or []))
    if themes:
        theme, n = sorted(themes.items(), key=lambda item: (-item[1], item[0]))[0]
        if 2 * n >= len(rows):
            criteria["theme"] = theme
    return criteria


async def create(session: AsyncSession, draft: Draft, actor: str, now: datetime) -> Insight:
    if draft.origin is InsightOrigin.feedback:
        found = set(
            await session.scalars(select(Feedback.id).where(Feedback.id.in_(draft.feedback_ids)))
        )
        missing = [i for i in draft.feedback_ids if i not in found]
        if missing:
            raise InvalidInput(f"Unknown feedback ids: {', '.join(map(str, missing[:10]))}.")
    if draft.criteria is not None:
        criteria = draft.criteria
    elif draft.origin is InsightOrigin.feedback:
        criteria = await _picked_criteria(session, draft.feedback_ids)
    else:
        criteria = _origin_criteria(draft)
    insight = Insight(
        title=draft.title,
        note=draft.note,
        owner_team=draft.owner_team,
        status=InsightStatus.new,
        origin=draft.origin,
        criteria=criteria,
        customer_message=draft.customer_message,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(insight)
    await session.flush()
    if draft.origin is InsightOrigin.feedback:
        await session.execute(
            insert(InsightFeedback),
            [{"insight_id": insight.id, "feedback_id": i} for i in draft.feedback_ids],
        )
    else:
        linked = (
            select(literal(insight.id, Integer), Feedback.id)
            .where(*_link_filter(draft, criteria).conditions())
            .order_by(Feedback.id)
            .limit(MAX_LINKED)
        )
        await session.execute(
            insert(InsightFeedback).from_select(["insight_id", "feedback_id"], linked)
        )
    details: dict[str, Any] = {"title": draft.title, "origin": draft.origin.value}
    if draft.range is not None:
        details["range"] = draft.range.as_json()
    if draft.pitfall is not None:
        details["pitfall"] = draft.pitfall.pitfall().as_json()
    if draft.theme is not None:
        details["theme"] = draft.theme
    session.add(audit.entry(actor, "create_insight", "insight", insight.id, details))
    await session.flush()
    return insight


async def get(session: AsyncSession, insight_id: int) -> Insight:
    insight = await session.get(Insight, insight_id)
    if insight is None:
        raise NotFound("No such insight.")
    return insight


EDITABLE = ("title", "note", "owner_team", "customer_message", "criteria")


async def edit(
    session: AsyncSession, insight_id: int, changes: Mapping[str, Any], actor: str, now: datetime
) -> Insight:
    unknown = [k for k in changes if k not in EDITABLE]
    if unknown:
        raise InvalidInput(f"Only these can be changed: {', '.join(EDITABLE)} (status: /status).")
    insight = await get(session, insight_id)
    changed: dict[str, Any] = {}
    if "title" in changes:
        insight.title = _text(changes, "title", MAX_TITLE, required=True) or insight.title
        changed["title"] = insight.title
    if "note" in changes:
        insight.note = _text(changes, "note", MAX_NOTE)
        changed["note"] = True
    if "owner_team" in changes:
        insight.owner_team = _team(changes["owner_team"])
        changed["owner_team"] = insight.owner_team.value
    if "customer_message" in changes:
        if insight.notify_until is not None:
            raise Conflict("Customers are already being told; the message can no longer change.")
        insight.customer_message = _text(changes, "customer_message", MAX_MESSAGE)
        changed["customer_message"] = True
    if "criteria" in changes:
        insight.criteria = parse_criteria(changes["criteria"])
        changed["criteria"] = insight.criteria
    insight.updated_at = now
    session.add(audit.entry(actor, "edit_insight", "insight", insight.id, changed))
    await session.flush()
    return insight


async def move(
    session: AsyncSession,
    insight_id: int,
    target: InsightStatus,
    actor: str,
    now: datetime,
    *,
    applied_at: datetime | None = None,
    notify: bool = False,
) -> Insight:
    """Move along the status flow; `applied` takes when it went live and whether to tell."""
    insight = await get(session, insight_id)
    current = insight.status
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(s.value for s in BOARD_ORDER if s in TRANSITIONS[current]) or "none"
        raise Conflict(
            f"An insight cannot move from {current.value} to {target.value} (allowed: {allowed})."
        )
    values: dict[str, Any] = {"status": target, "updated_at": now}
    details: dict[str, Any] = {"from": current.value, "to": target.value}
    if target is InsightStatus.applied:
        went_live = applied_at or now
        if went_live > now:
            raise InvalidInput("'applied_at' cannot be in the future.")
        values["applied_at"] = went_live
        details["applied_at"] = went_live.isoformat()
        if notify:
            if not insight.customer_message:
                raise InvalidInput("Write the customer message before telling the customers.")
            values["notify_until"] = now + timedelta(days=NOTICE_DAYS)
        details["notify"] = notify
    elif applied_at is not None or notify:
        raise InvalidInput("'applied_at' and 'notify' go with the status applied only.")
    if target is InsightStatus.new:  # reopened
        values.update(applied_at=None, notify_until=None)
    result = await session.execute(
        update(Insight)
        .where(Insight.id == insight_id, Insight.status == current)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("Someone else changed this insight's status just now; reload it.")
    session.add(audit.entry(actor, "insight_status", "insight", insight_id, details))
    await session.flush()
    await session.refresh(insight)
    return insight


async def remove(session: AsyncSession, insight_id: int, actor: str) -> None:
    insight = await get(session, insight_id)
    if insight.status not in (InsightStatus.new, InsightStatus.wont_do):
        raise Conflict("Only new or won't-do insights can be deleted.")
    await session.execute(delete(Insight).where(Insight.id == insight_id))
    session.add(
        audit.entry(actor, "delete_insight", "insight", insight_id, {"title": insight.title})
    )
    await session.flush()


# ---- what the board shows ------------------------------------------------------------------


def is_negative() -> ColumnElement[bool]:
    """Negative sentiment or a low score (the closed-loop thresholds)."""
    score = Feedback.score
    return or_(
        Feedback.sentiment < NEGATIVE,
        (Feedback.kind == FeedbackKind.csat) & (score <= 2),
        (Feedback.kind == FeedbackKind.nps) & (score <= 6),
        (Feedback.kind == FeedbackKind.ces) & (score >= 6),
    )


@dataclass(frozen=True)
class CompareRules:
    """When a before/after comparison may be read (settings INSIGHT_MIN_WINDOW_DAYS and
    DASHBOARD_MIN_ANSWERS)."""

    min_days: int = 14
    min_answers: int = 10


# The verdict of one metric's change: better/worse (p < SIGNIFICANCE), no_clear_change,
# too_few_answers (a side has fewer than min_answers) or too_early (windows < min_days).
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Comparison:
    applied_at: datetime
    before_start: datetime
    after_end: datetime
    before: MetricCounts
    after: MetricCounts
    negative_before: int
    negative_after: int
    rules: CompareRules = CompareRules()

    @property
    def window_days(self) -> float:
        return (self.after_end - self.applied_at).total_seconds() / 86400

    @property
    def too_early(self) -> bool:
        return self.after_end - self.applied_at < timedelta(days=self.rules.min_days)

    @property
    def ready_at(self) -> datetime:
        return self.applied_at + timedelta(days=self.rules.min_days)

    def _verdict(self, test: ProportionTest, n1: int, n2: int, better: int) -> dict[str, Any]:
        if self.too_early:
            verdict = "too_early"
        elif min(n1, n2) < self.rules.min_answers:
            verdict = "too_few_answers"
        elif test.z is None or test.p_value is None or test.p_value >= SIGNIFICANCE:
            verdict = "no_clear_change"
        else:
            verdict = "better" if test.z * better > 0 else "worse"
        ready = not self.too_early
        return {
            "before_n": n1,
            "after_n": n2,
            "z": test.z if ready else None,
            "p_value": test.p_value if ready else None,
            "verdict": verdict,
        }

    def tests(self) -> dict[str, dict[str, Any]]:
        b, a = self.before, self.after
        return {
            "csat": self._verdict(
                two_proportion_test(
                    b.csat_satisfied, b.csat_responses, a.csat_satisfied, a.csat_responses
                ),
                b.csat_responses,
                a.csat_responses,
                1,
            ),
            "nps": self._verdict(
                nps_difference_test(
                    (b.nps_promoters, b.nps_detractors, b.nps_responses),
                    (a.nps_promoters, a.nps_detractors, a.nps_responses),
                ),
                b.nps_responses,
                a.nps_responses,
                1,
            ),
            "negative": self._verdict(
                two_proportion_test(self.negative_before, b.volume, self.negative_after, a.volume),
                b.volume,
                a.volume,
                -1,
            ),
        }

    def as_json(self) -> dict[str, Any]:
        def side(counts: MetricCounts, negative: int) -> dict[str, Any]:
            share = round(100 * negative / counts.volume, 1) if counts.volume else None
            return {**counts.as_json(), "negative": {"count": negative, "percent": share}}

        def delta(a: float | None, b: float | None) -> float | None:
            if self.too_early or a is None or b is None:
                return None
            return round(b - a, 2)

        b, a = self.before, self.after
        return {
            "applied_at": self.applied_at.isoformat(),
            "window_days": round(self.window_days, 2),
            "min_days": self.rules.min_days,
            "min_answers": self.rules.min_answers,
            "too_early": self.too_early,
            "ready_at": self.ready_at.isoformat(),
            "before": {
                "from": self.before_start.isoformat(),
                "to": self.applied_at.isoformat(),
                **side(b, self.negative_before),
            },
            "after": {
                "from": self.applied_at.isoformat(),
                "to": self.after_end.isoformat(),
                **side(a, self.negative_after),
            },
            "change": {
                "csat_percent": delta(b.csat_percent, a.csat_percent),
                "nps": delta(b.nps, a.nps),
                "ces": delta(b.ces, a.ces),
                "sentiment": delta(b.sentiment, a.sentiment),
                "negative_percent": delta(
                    side(b, self.negative_before)["negative"]["percent"],
                    side(a, self.negative_after)["negative"]["percent"],
                ),
            },
            "tests": self.tests(),
        }


def _utc_range(start: datetime, end: datetime) -> DateRange:
    return DateRange(start.astimezone(timezone.utc).date(), end.astimezone(timezone.utc).date())


async def compare(
    session: AsyncSession,
    insight: Insight,
    now: datetime,
    days: int = DEFAULT_COMPARE_DAYS,
    rules: CompareRules = CompareRules(),
) -> Comparison | None:
    """Matching feedback since `applied_at` (up to `days`, never less than
    `rules.min_days`) vs. as long right before it; "too early" while less than
    `rules.min_days` have passed since applying.

    None when the insight is not applied or has no criteria (nothing to match)."""
    if insight.applied_at is None or not insight.criteria:
        return None
    applied = insight.applied_at
    window = timedelta(days=max(days, rules.min_days))
    after_end = max(applied, min(now, applied + window))
    before_start = applied - (after_end - applied)
    matches = matching(insight.criteria, _utc_range(before_start, after_end))
    period = case((Feedback.created_at < applied, 0), else_=1)
    negative = func.coalesce(func.sum(case((is_negative(), 1), else_=0)), 0)
    rows = await session.execute(
        select(period, negative, *feedback_aggregates())
        .where(
            matches,
            Feedback.created_at >= before_start,
            Feedback.created_at < after_end,
        )
        .group_by(period)
    )
    found = {int(r[0]): (int(r[1]), counts_from(r[2:], None, None)) for r in rows}
    empty = (0, MetricCounts(dispatches_sent=None, dispatches_answered=None))
    (neg_before, before), (neg_after, after) = found.get(0, empty), found.get(1, empty)
    return Comparison(applied, before_start, after_end, before, after, neg_before, neg_after, rules)


@dataclass(frozen=True)
class TrendWeek:
    start: date
    volume: int
    negative: int


async def trend(session: AsyncSession, insight: Insight, today: date) -> list[TrendWeek]:
    """Matching feedback per week (UTC, Monday) over the last `TREND_WEEKS` weeks."""
    monday = today - timedelta(days=today.weekday())
    weeks = [monday - timedelta(weeks=n) for n in range(TREND_WEEKS - 1, -1, -1)]
    if not insight.criteria:
        return [TrendWeek(w, 0, 0) for w in weeks]
    date_range = DateRange(weeks[0], today)
    matches = matching(insight.criteria, date_range)
    key = bucket_expression(
        Feedback.created_at, session.get_bind().dialect.name, date_range, "week"
    )
    inner = (
        select(key.label("week"), case((is_negative(), 1), else_=0).label("negative"))
        .where(matches)
        .subquery()
    )
    rows = await session.execute(
        select(inner.c.week, func.count(), func.sum(inner.c.negative)).group_by(inner.c.week)
    )
    found = {as_date(r[0]): (int(r[1]), int(r[2] or 0)) for r in rows}
    return [TrendWeek(w, *found.get(w, (0, 0))) for w in weeks]


@dataclass(frozen=True)
class LinkStats:
    feedback: int = 0
    customers: int = 0
    reachable: int = 0  # identified (not anonymous) customers: they can be told
    told: int = 0


async def link_stats(session: AsyncSession, insight_ids: Sequence[int]) -> dict[int, LinkStats]:
    if not insight_ids:
        return {}
    rows = await session.execute(
        select(
            InsightFeedback.insight_id,
            func.count(),
            func.count(func.distinct(Feedback.customer_id)),
            func.count(
                func.distinct(case((Customer.is_anonymous.is_(False), Feedback.customer_id)))
            ),
        )
        .join(Feedback, Feedback.id == InsightFeedback.feedback_id)
        .join(Customer, Customer.id == Feedback.customer_id)
        .where(InsightFeedback.insight_id.in_(insight_ids))
        .group_by(InsightFeedback.insight_id)
    )
    told = dict(
        (
            await session.execute(
                select(InsightNotice.insight_id, func.count())
                .where(InsightNotice.insight_id.in_(insight_ids))
                .group_by(InsightNotice.insight_id)
            )
        )
        .tuples()
        .all()
    )
    return {
        int(r[0]): LinkStats(int(r[1]), int(r[2]), int(r[3]), int(told.get(r[0], 0))) for r in rows
    }


def insight_json(insight: Insight, stats: LinkStats | None = None) -> dict[str, Any]:
    stats = stats or LinkStats()
    return {
        "id": insight.id,
        "title": insight.title,
        "note": insight.note,
        "owner_team": insight.owner_team.value,
        "status": insight.status.value,
        "origin": insight.origin.value,
        "criteria": insight.criteria,
        "customer_message": insight.customer_message,
        "notify_until": insight.notify_until.isoformat() if insight.notify_until else None,
        "created_by": insight.created_by,
        "created_at": insight.created_at.isoformat(),
        "updated_at": insight.updated_at.isoformat(),
        "applied_at": insight.applied_at.isoformat() if insight.applied_at else None,
        "next_statuses": [s.value for s in BOARD_ORDER if s in TRANSITIONS[insight.status]],
        "linked": {
            "feedback": stats.feedback,
            "customers": stats.customers,
            "reachable_customers": stats.reachable,
            "told": stats.told,
        },
    }


async def board(
    session: AsyncSession,
    now: datetime,
    *,
    status: InsightStatus | None = None,
    team: InsightTeam | None = None,
    rules: CompareRules = CompareRules(),
) -> list[dict[str, Any]]:
    """Every insight (by status, newest change first) with its links, trend and comparison."""
    statement = select(Insight).order_by(Insight.updated_at.desc(), Insight.id.desc())
    if status is not None:
        statement = statement.where(Insight.status == status)
    if team is not None:
        statement = statement.where(Insight.owner_team == team)
    insights = list(await session.scalars(statement.limit(MAX_BOARD)))
    insights.sort(key=lambda i: BOARD_ORDER.index(i.status))  # stable: keeps newest first
    stats = await link_stats(session, [i.id for i in insights])
    today = now.astimezone(timezone.utc).date()
    items = []
    for insight in insights:
        weeks = await trend(session, insight, today)
        comparison = await compare(session, insight, now, rules=rules)
        items.append(
            {
                **insight_json(insight, stats.get(insight.id)),
                "volume": sum(w.volume for w in weeks),
                "trend": [
                    {"start": w.start.isoformat(), "volume": w.volume, "negative": w.negative}
                    for w in weeks
                ],
                "comparison": comparison.as_json() if comparison else None,
            }
        )
    return items


async def linked_feedback(
    session: AsyncSession, insight_id: int, limit: int = 50
) -> tuple[int, list[feedback_query.FeedbackRow]]:
    """The newest linked rows (and how many there are) for the insight's detail view."""
    total = await session.scalar(
        select(func.count()).where(InsightFeedback.insight_id == insight_id)
    )
    ids = select(InsightFeedback.feedback_id).where(InsightFeedback.insight_id == insight_id)
    everything = FeedbackFilter(range=DateRange(date(1970, 1, 1), date(9999, 12, 30)))
    statement = (
        feedback_query._rows_select(everything)
        .where(Feedback.id.in_(ids))
        .order_by(Feedback.created_at.desc(), Feedback.id.desc())
        .limit(limit)
    )
    rows = [feedback_query._row(r) for r in (await session.execute(statement)).all()]
    return int(total or 0), rows


# ---- telling the customers -----------------------------------------------------------------


async def pending_notices(session: AsyncSession, customer_id: int, now: datetime) -> list[Insight]:
    """Applied insights this customer gave feedback to and was not told about yet."""
    linked = exists().where(
        InsightFeedback.insight_id == Insight.id,
        InsightFeedback.feedback_id == Feedback.id,
        Feedback.customer_id == customer_id,
    )
    told = exists().where(
        InsightNotice.insight_id == Insight.id, InsightNotice.customer_id == customer_id
    )
    statement = (
        select(Insight)
        .where(
            Insight.status == InsightStatus.applied,
            Insight.notify_until > now,
            Insight.customer_message.is_not(None),
            linked,
            ~told,
        )
        .order_by(Insight.applied_at, Insight.id)
    )
    return list(await session.scalars(statement))


async def record_notice(
    session: AsyncSession, insight: Insight, customer_id: int, conversation_id: str, now: datetime
) -> Message:
    """Write the notice and its transcript message (same transaction: the caller commits).

    A second delivery to the same customer fails with IntegrityError on flush."""
    assert insight.customer_message is not None
    notice = InsightNotice(
        insight_id=insight.id,
        customer_id=customer_id,
        conversation_id=conversation_id,
        delivered_at=now,
    )
    session.add(notice)
    await session.flush()  # the unique (insight, customer) key decides here
    message = await repositories.add_message(
        session, conversation_id, MessageSender.bot, insight.customer_message
    )
    notice.message_id = message.id
    session.add(
        AuditLog(
            actor="system",
            action="insight_notice",
            target_type="insight",
            target_id=str(insight.id),
            details={"customer_id": customer_id, "conversation_id": conversation_id},
        )
    )
    await session.flush()
    return message
