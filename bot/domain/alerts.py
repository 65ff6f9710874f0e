"""CX alerts (issue #21): what changed that a CX manager should hear about without looking.

Evaluated on whole weeks (Monday to Sunday, UTC): the **week** is the last one that has
ended before `now`; the **baseline** the `band_weeks` (8) weeks before it.

* **metric_band**: CSAT %, NPS or CES of the week outside mean +- `band_sd` (2) standard
  deviations (population) of the baseline weeks' values. The week needs at least
  `min_answers` answers and the baseline at least half its weeks with that many (only
  those weeks count); a baseline without spread (sd 0) never alerts.
* **new_pitfall**: a CSAT/NPS pitfall of the journey map (stage or stage x channel, the
  same thresholds) over the last 4 weeks that was not one over the 4 weeks before.
* **theme_spike**: negative comments about a theme in the week at least `spike_min` (5),
  at least `spike_ratio` (2) x the baseline's weekly mean and above mean + `band_sd` sd.

Each alert has a stable key (kind, what, week): `store_new` inserts the ones whose key is
not stored yet, so a re-run (or a second web replica) never repeats an alert. Delivery
(webhook and daily digest) is in bot/alerts.py. The functions flush but never commit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import journey, labels, metrics
from bot.domain.feedback_query import THEMES, DateRange, FeedbackFilter
from bot.storage.models import Alert

PITFALL_WEEKS = 4
BAND_METRICS = ("csat", "nps", "ces")


@dataclass(frozen=True)
class AlertRules:
    band_sd: float = 2.0
    band_weeks: int = 8
    min_answers: int = 10
    spike_ratio: float = 2.0
    spike_min: int = 5
    thresholds: journey.PitfallThresholds = field(default_factory=journey.PitfallThresholds)


@dataclass(frozen=True)
class NewAlert:
    key: str
    kind: str
    text: str
    path: str  # dashboard path and query, joined to PUBLIC_URL
    details: dict[str, Any]


def week_of(now: datetime) -> tuple[date, date]:
    """Monday and Sunday of the last whole week (UTC) before `now`."""
    today = now.astimezone(timezone.utc).date()
    monday = today - timedelta(days=today.weekday()) - timedelta(days=7)
    return monday, monday + timedelta(days=6)


def _range_query(start: date, end: date, **extra: str) -> str:
    return urlencode({"from": start.isoformat(), "to": end.isoformat(), "tz": "UTC", **extra})


def _value(counts: metrics.MetricCounts, metric: str) -> float | None:
    if metric == "csat":
        return counts.csat_percent
    if metric == "nps":
        return counts.nps
    return counts.ces


def _n(counts: metrics.MetricCounts, metric: str) -> int:
    return {
        "csat": counts.csat_responses,
        "nps": counts.nps_responses,
        "ces": counts.ces_responses,
    }[metric]


def _mean_sd(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


METRIC_NAMES = {"csat": "CSAT", "nps": "NPS", "ces": "CES"}
UNITS = {"csat": " %", "nps": "", "ces": ""}


async def metric_band_alerts(
    session: AsyncSession, now: datetime, rules: AlertRules
) -> list[NewAlert]:
    monday, sunday = week_of(now)
    first = monday - timedelta(weeks=rules.band_weeks)
    points = await metrics.trend(session, FeedbackFilter(DateRange(first, sunday)), "week")
    by_start = {p.start: p.counts for p in points}
    week = by_start.get(monday)
    found = []
    for metric in BAND_METRICS:
        if week is None or _n(week, metric) < rules.min_answers:
            continue
        value = _value(week, metric)
        base = [
            v
            for p in points
            if p.start < monday
            and _n(p.counts, metric) >= rules.min_answers
            and (v := _value(p.counts, metric)) is not None
        ]
        if value is None or len(base) * 2 < rules.band_weeks:
            continue
        mean, sd = _mean_sd(base)
        low, high = mean - rules.band_sd * sd, mean + rules.band_sd * sd
        if sd == 0 or low <= value <= high:
            continue
        worse = value > high if metric == "ces" else value < low
        name, unit = METRIC_NAMES[metric], UNITS[metric]
        direction = "above" if value > high else "below"
        text = (
            f"{name} {value:g}{unit} in the week of {monday.isoformat()} "
            f"({_n(week, metric)} answers) is {direction} its band {low:.1f} to {high:.1f}{unit} "
            f"(mean {mean:.1f} +- {rules.band_sd:g} sd over {len(base)} weeks)"
            f"{': worse than usual' if worse else ': better than usual'}."
        )
        found.append(
            NewAlert(
                key=f"metric_band:{metric}:{monday.isoformat()}",
                kind="metric_band",
                text=text,
                path="/dashboard/?" + _range_query(first, sunday, bucket="week"),
                details={
                    "metric": metric,
                    "week": monday.isoformat(),
                    "value": value,
                    "answers": _n(week, metric),
                    "mean": round(mean, 2),
                    "sd": round(sd, 2),
                    "low": round(low, 2),
                    "high": round(high, 2),
                    "baseline_weeks": len(base),
                    "worse": worse,
                },
            )
        )
    return found


def _pitfall_key(p: journey.Pitfall) -> tuple[str, str | None, str]:
    return (p.stage, p.channel, p.metric)


async def new_pitfall_alerts(
    session: AsyncSession, now: datetime, rules: AlertRules
) -> list[NewAlert]:
    monday, sunday = week_of(now)
    start = monday - timedelta(weeks=PITFALL_WEEKS - 1)
    before = DateRange(start - timedelta(weeks=PITFALL_WEEKS), start - timedelta(days=1))
    current = DateRange(start, sunday)
    scored = {"csat", "nps"}
    now_map = await journey.journey_map(session, FeedbackFilter(current), rules.thresholds)
    old_map = await journey.journey_map(session, FeedbackFilter(before), rules.thresholds)
    old = {_pitfall_key(p) for p in old_map.pitfalls if p.metric in scored}
    found = []
    for p in now_map.pitfalls:
        if p.metric not in scored or _pitfall_key(p) in old:
            continue
        where = labels.label("stage", p.stage) + (
            f" x {labels.label('channel', p.channel)}" if p.channel else ""
        )
        name = METRIC_NAMES[p.metric]
        text = (
            f"New pitfall: {where}, {name} {p.value:g}{UNITS[p.metric]} over "
            f"{start.isoformat()} to {sunday.isoformat()} (below {p.threshold:g}; it was not a "
            f"pitfall in the 4 weeks before)."
        )
        found.append(
            NewAlert(
                key=f"new_pitfall:{p.stage}:{p.channel or '-'}:{p.metric}:{monday.isoformat()}",
                kind="new_pitfall",
                text=text,
                path="/dashboard/journey?" + _range_query(start, sunday),
                details={**p.as_json(), "from": start.isoformat(), "to": sunday.isoformat()},
            )
        )
    return found


async def theme_spike_alerts(
    session: AsyncSession, now: datetime, rules: AlertRules
) -> list[NewAlert]:
    monday, sunday = week_of(now)
    first = monday - timedelta(weeks=rules.band_weeks)
    found = []
    for theme in THEMES:
        flt = FeedbackFilter(DateRange(first, sunday), theme=theme, sentiment="negative")
        points = await metrics.trend(session, flt, "week")
        week = next((p.counts.volume for p in points if p.start == monday), 0)
        base = [float(p.counts.volume) for p in points if p.start < monday]
        if not base:
            continue
        mean, sd = _mean_sd(base)
        if (
            week < rules.spike_min
            or week < rules.spike_ratio * mean
            or week <= mean + rules.band_sd * sd
        ):
            continue
        text = (
            f"Theme spike: {week} negative comments about {labels.label('theme', theme)} in the "
            f"week of {monday.isoformat()}, against {mean:.1f} a week over the {len(base)} "
            f"weeks before."
        )
        found.append(
            NewAlert(
                key=f"theme_spike:{theme}:{monday.isoformat()}",
                kind="theme_spike",
                text=text,
                path="/dashboard/explorer?"
                + _range_query(monday, sunday, theme=theme, sentiment="negative"),
                details={
                    "theme": theme,
                    "week": monday.isoformat(),
                    "count": week,
                    "baseline_mean": round(mean, 2),
                    "baseline_sd": round(sd, 2),
                    "baseline_weeks": len(base),
                },
            )
        )
    return found


async def detect(session: AsyncSession, now: datetime, rules: AlertRules) -> list[NewAlert]:
    return [
        *await metric_band_alerts(session, now, rules),
        *await new_pitfall_alerts(session, now, rules),
        *await theme_spike_alerts(session, now, rules),
    ]


async def store_new(
    session: AsyncSession, found: list[NewAlert], public_url: str, now: datetime
) -> list[Alert]:
    """Insert the alerts whose key is not stored yet; returns the new rows."""
    if not found:
        return []
    known = set(
        await session.scalars(select(Alert.key).where(Alert.key.in_([a.key for a in found])))
    )
    rows = []
    for alert in found:
        if alert.key in known:
            continue
        known.add(alert.key)
        row = Alert(
            key=alert.key,
            kind=alert.kind,
            text=alert.text,
            link=public_url.rstrip("/") + alert.path,
            details=alert.details,
            created_at=now,
        )
        session.add(row)
        rows.append(row)
    await session.flush()
    return rows
