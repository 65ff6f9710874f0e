"""The journey map of SPEC §7: stages as columns, acquisition sources feeding in, pitfalls.

* Customers who reached a stage: distinct customers with a journey (lifecycle) opened in
  the range that is at that stage or a later one now. Stages only move forward, so a
  journey at `use` has passed `purchase`; one that skipped `research` counts as passing it.
* Share who moved on: reached(next stage) / reached(stage); drop-off = 100 - that.
  `use -> support` is a detour, not progress: no drop-off for `use` and `support`.
* Feedback volume and scores per stage and per stage x channel cell (`metrics`), and the
  most frequent themes of negative comments (VADER compound below -0.05) per stage.
* A stage or a cell is a pitfall when its CSAT % or NPS is below the configured threshold
  (with at least `min_responses` answers behind it) or its drop-off is above one (with
  at least `min_responses` customers reached).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Integer, Text, and_, case, cast, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.analysis import NEGATIVE
from bot.domain.enums import Stage
from bot.domain.feedback_query import (
    THEMES,
    FeedbackFilter,
    acquisition_expression,
    rollup_applies,
    theme_condition,
)
from bot.domain.lifecycle import STAGE_ORDER
from bot.domain.metrics import MetricCounts, feedback_rows, group_rollup, stage_key
from bot.storage.models import Customer, Feedback, JourneyLink, Lifecycle
from bot.storage.rollup import UNATTRIBUTED

# Transitions whose drop-off can be a pitfall (the buying funnel).
FUNNEL_STAGES = (Stage.discovery, Stage.research, Stage.purchase)
TOP_THEMES = 3


@dataclass(frozen=True)
class PitfallThresholds:
    csat_below: float = 60.0
    nps_below: float = 0.0
    dropoff_above: float = 70.0
    min_responses: int = 5


@dataclass(frozen=True)
class Pitfall:
    stage: str
    channel: str | None
    metric: str  # "csat", "nps" or "dropoff"
    value: float
    threshold: float

    def filter(self) -> dict[str, str]:
        """Explorer filters showing the feedback behind the pitfall."""
        found = {"stage": self.stage}
        if self.channel:
            found["channel"] = self.channel
        if self.metric == "csat":
            found.update(kind="csat", score_max="3")
        elif self.metric == "nps":
            found.update(kind="nps", score_max="6")
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "channel": self.channel,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "filter": self.filter(),
        }


@dataclass(frozen=True)
class ChannelCell:
    channel: str
    counts: MetricCounts
    pitfalls: list[Pitfall]

    def as_json(self, min_answers: int | None = None) -> dict[str, Any]:
        return {
            "channel": self.channel,
            **self.counts.as_json(min_answers),
            "pitfalls": [p.as_json() for p in self.pitfalls],
        }


@dataclass(frozen=True)
class StageColumn:
    stage: str
    customers: int
    moved_on_percent: float | None
    dropoff_percent: float | None
    counts: MetricCounts
    channels: list[ChannelCell]
    negative_themes: list[tuple[str, int]]
    pitfalls: list[Pitfall] = field(default_factory=list)

    def as_json(self, min_answers: int | None = None) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "customers": self.customers,
            "moved_on_percent": self.moved_on_percent,
            "dropoff_percent": self.dropoff_percent,
            **self.counts.as_json(min_answers),
            "channels": [c.as_json(min_answers) for c in self.channels],
            "negative_themes": [{"theme": t, "count": n} for t, n in self.negative_themes],
            "pitfalls": [p.as_json() for p in self.pitfalls],
        }


@dataclass(frozen=True)
class SourceRow:
    source: str
    customers: int
    share_percent: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "customers": self.customers,
            "share_percent": self.share_percent,
        }


@dataclass(frozen=True)
class JourneyMap:
    stages: list[StageColumn]
    sources: list[SourceRow]
    thresholds: PitfallThresholds

    @property
    def pitfalls(self) -> list[Pitfall]:
        found = []
        for column in self.stages:
            found.extend(column.pitfalls)
            for cell in column.channels:
                found.extend(cell.pitfalls)
        return found

    def as_json(self, min_answers: int | None = None) -> dict[str, Any]:
        t = self.thresholds
        body: dict[str, Any] = {
            "stages": [s.as_json(min_answers) for s in self.stages],
            "sources": [s.as_json() for s in self.sources],
            "pitfalls": [p.as_json() for p in self.pitfalls],
            "thresholds": {
                "csat_below": t.csat_below,
                "nps_below": t.nps_below,
                "dropoff_above": t.dropoff_above,
                "min_responses": t.min_responses,
            },
        }
        if min_answers is not None:
            body["min_answers"] = min_answers
        return body


def _stage_rank() -> Any:
    return case({stage: i for i, stage in enumerate(STAGE_ORDER)}, value=Lifecycle.stage)


async def link_counts(session: AsyncSession, flt: FeedbackFilter) -> dict[str, int] | None:
    """Distinct customers per `reach:<rank>` and `source:<source>` key with a journey opened
    in the range, from `journey_links` (journeys - links inside the range, see
    bot/storage/rollup_journey.py); None where it is not kept (SQLite) or the range is not
    in whole UTC days."""
    if session.get_bind().dialect.name != "postgresql" or flt.range.tz.key != "UTC":
        return None
    j = JourneyLink
    start, end = flt.range.start, flt.range.end
    first, last = start.replace(day=1), end.replace(day=1)
    after_first = (first + timedelta(days=32)).replace(day=1)
    inside = or_(
        and_(j.grain == "n", j.m >= start, j.m <= end),
        and_(j.grain == "mm", j.m > first, j.a < last),
        and_(j.grain == "dm", j.m == first, j.a >= start, j.b < last),
        and_(j.grain == "md", j.m == last, j.a <= end, j.b > first),
        and_(j.grain == "dd", j.m == last, j.a >= start, j.a < after_first, j.b <= end),
    )
    customers = func.sum(case((j.grain == "n", j.n), else_=-j.n))
    rows = await session.execute(select(j.key, customers).where(inside).group_by(j.key))
    return {str(key): int(n) for key, n in rows}


async def customers_reached(
    session: AsyncSession, flt: FeedbackFilter, links: dict[str, int] | None = None
) -> dict[str, int]:
    """Distinct customers per stage reached (that stage or later), journeys opened in range."""
    if links is not None and flt.customer_id is None and flt.acquisition is None:
        return {stage.value: links.get(f"reach:{i}", 0) for i, stage in enumerate(STAGE_ORDER)}
    in_range = (
        Lifecycle.opened_at >= flt.range.start_utc,
        Lifecycle.opened_at < flt.range.end_utc,
    )
    furthest = (
        select(Lifecycle.customer_id, func.max(_stage_rank()).label("rank"))
        .where(*in_range)
        .group_by(Lifecycle.customer_id)
    )
    if flt.customer_id is not None:
        furthest = furthest.where(Lifecycle.customer_id == flt.customer_id)
    if flt.acquisition is not None:
        furthest = furthest.join(Customer, Customer.id == Lifecycle.customer_id).where(
            acquisition_expression() == flt.acquisition
        )
    sub = furthest.subquery()
    rows = await session.execute(select(sub.c.rank, func.count()).group_by(sub.c.rank))
    at_rank = {int(rank): int(n) for rank, n in rows}
    return {
        stage.value: sum(n for rank, n in at_rank.items() if rank >= i)
        for i, stage in enumerate(STAGE_ORDER)
    }


async def _negative_themes(
    session: AsyncSession, flt: FeedbackFilter
) -> dict[str, list[tuple[str, int]]]:
    if rollup_applies(flt) and not (flt.stages or flt.channels):
        g = group_rollup("negative_theme", flt.range)
        rows = await session.execute(select(g.c.key, func.sum(g.c.volume)).group_by(g.c.key))
        counted: dict[str, list[tuple[str, int]]] = {}
        for key, n in rows:
            stage, _, theme = str(key).partition(":")
            if n:
                counted.setdefault(stage, []).append((theme, int(n)))
        return {
            stage: sorted(found, key=lambda c: (-c[1], c[0]))[:TOP_THEMES]
            for stage, found in counted.items()
        }
    return await _negative_themes_from_rows(session, flt)


async def _negative_themes_from_rows(
    session: AsyncSession, flt: FeedbackFilter
) -> dict[str, list[tuple[str, int]]]:
    negative = Feedback.sentiment < NEGATIVE
    columns = [
        func.sum(case((negative & theme_condition(theme), 1), else_=0)).cast(Integer)
        for theme in THEMES
    ]
    rows = await session.execute(
        select(stage := stage_key(), *columns).where(*flt.conditions(), negative).group_by(stage)
    )
    result: dict[str, list[tuple[str, int]]] = {}
    for row in rows:
        counted = [(theme, int(n or 0)) for theme, n in zip(THEMES, row[1:], strict=True)]
        top = sorted((c for c in counted if c[1] > 0), key=lambda c: (-c[1], c[0]))
        result[str(row[0])] = top[:TOP_THEMES]
    return result


async def _sources(
    session: AsyncSession, flt: FeedbackFilter, links: dict[str, int] | None
) -> list[SourceRow]:
    """Customers per acquisition source whose journeys opened in the range (feeding in).

    Their scores are the acquisition source breakdown of /api/metrics (a join of every
    feedback row to its journey: too slow to repeat here).
    """
    if links is not None:
        prefix = "source:"
        customers = {k[len(prefix) :]: n for k, n in links.items() if k.startswith(prefix) and n}
    else:
        customers = await _sources_from_rows(session, flt)
    total = sum(customers.values())
    return [
        SourceRow(k, n, round(100 * n / total, 1) if total else None)
        for k, n in sorted(customers.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


async def _sources_from_rows(session: AsyncSession, flt: FeedbackFilter) -> dict[str, int]:
    # The journey's own source (set when it opens): read from the journeys' index alone.
    source = func.coalesce(cast(Lifecycle.acquisition_channel, Text), literal_column("'unknown'"))
    rows = await session.execute(
        select(source, func.count(func.distinct(Lifecycle.customer_id)))
        .where(Lifecycle.opened_at >= flt.range.start_utc, Lifecycle.opened_at < flt.range.end_utc)
        .group_by(source)
    )
    return {str(k): int(n) for k, n in rows}


def score_pitfalls(
    stage: str, channel: str | None, counts: MetricCounts, t: PitfallThresholds
) -> list[Pitfall]:
    found = []
    csat = counts.csat_percent
    if csat is not None and counts.csat_responses >= t.min_responses and csat < t.csat_below:
        found.append(Pitfall(stage, channel, "csat", csat, t.csat_below))
    nps = counts.nps
    if nps is not None and counts.nps_responses >= t.min_responses and nps < t.nps_below:
        found.append(Pitfall(stage, channel, "nps", nps, t.nps_below))
    return found


async def scored_pitfalls(
    session: AsyncSession, flt: FeedbackFilter, thresholds: PitfallThresholds
) -> list[Pitfall]:
    """The CSAT and NPS pitfalls of `journey_map` (stages and their channel cells) alone,
    without reach, drop-off, themes or sources: what "what to fix first" ranks."""
    by_stage: dict[str, list[tuple[str, MetricCounts]]] = {}
    for (stage, channel), counts in await feedback_rows(session, flt, ["stage", "channel"]):
        by_stage.setdefault(stage, []).append((channel, counts))
    found: list[Pitfall] = []
    for stage in STAGE_ORDER:
        total = MetricCounts(dispatches_sent=None, dispatches_answered=None)
        for channel, counts in by_stage.get(stage.value, []):
            found += score_pitfalls(stage.value, channel, counts, thresholds)
            total = total + counts
        found += score_pitfalls(stage.value, None, total, thresholds)
    return found


async def journey_map(
    session: AsyncSession, flt: FeedbackFilter, thresholds: PitfallThresholds
) -> JourneyMap:
    """Stages with reach, moving on, metrics, channel cells, negative themes and pitfalls."""
    links = await link_counts(session, flt)
    reached = await customers_reached(session, flt, links)
    by_stage: dict[str, list[ChannelCell]] = {}
    for (stage, channel), counts in await feedback_rows(session, flt, ["stage", "channel"]):
        pitfalls = score_pitfalls(stage, channel, counts, thresholds)
        by_stage.setdefault(stage, []).append(ChannelCell(channel, counts, pitfalls))
    themes = await _negative_themes(session, flt)
    columns = []
    for i, stage in enumerate(STAGE_ORDER):
        channels = sorted(
            by_stage.get(stage.value, []), key=lambda c: (-c.counts.volume, c.channel)
        )
        total = MetricCounts(dispatches_sent=None, dispatches_answered=None)
        for cell in channels:
            total = total + cell.counts
        moved_on = dropoff = None
        if i + 1 < len(STAGE_ORDER) and reached[stage.value]:
            moved_on = round(100 * reached[STAGE_ORDER[i + 1].value] / reached[stage.value], 1)
            if stage in FUNNEL_STAGES:
                dropoff = round(100 - moved_on, 1)
        pitfalls = score_pitfalls(stage.value, None, total, thresholds)
        # A drop-off needs as many journeys behind it as a score needs answers.
        enough = reached[stage.value] >= thresholds.min_responses
        if dropoff is not None and enough and dropoff > thresholds.dropoff_above:
            pitfalls.append(
                Pitfall(stage.value, None, "dropoff", dropoff, thresholds.dropoff_above)
            )
        columns.append(
            StageColumn(
                stage=stage.value,
                customers=reached[stage.value],
                moved_on_percent=moved_on,
                dropoff_percent=dropoff,
                counts=total,
                channels=channels,
                negative_themes=themes.get(stage.value, []),
                pitfalls=pitfalls,
            )
        )
    # Reviews from reviewers who are not known customers (issue #23): no journey, so no
    # stage, reach or drop-off; one column with a cell per channel, after the stages.
    unattributed = sorted(
        by_stage.get(UNATTRIBUTED, []), key=lambda c: (-c.counts.volume, c.channel)
    )
    if unattributed:
        total = MetricCounts(dispatches_sent=None, dispatches_answered=None)
        for cell in unattributed:
            cell.pitfalls.clear()  # the explorer's stage filter knows journey stages only
            total = total + cell.counts
        columns.append(
            StageColumn(
                stage=UNATTRIBUTED,
                customers=0,
                moved_on_percent=None,
                dropoff_percent=None,
                counts=total,
                channels=unattributed,
                negative_themes=themes.get(UNATTRIBUTED, []),
                pitfalls=[],
            )
        )
    return JourneyMap(columns, await _sources(session, flt, links), thresholds)
