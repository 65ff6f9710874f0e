"""Generated weeks of feedback for the alert tests (issue #21), with a plain-Python reference.

Thirteen whole weeks (Monday 2025-12-29 to Sunday 2026-03-29, UTC); the clock is Wednesday
2026-04-01, so the alert week is 2026-03-23..29 and the baseline the eight weeks before.
Forty journeys a week with CSAT, NPS and CES answers and some negative comments. One story
is planted per data set:

* `"csat_email_delivery"`: CSAT falls in the alert week; (use, email) CSAT is bad from
  2026-03-02 on (a new pitfall over the last four weeks); delivery complaints spike;
* `"nps_callcenter_billing"`: NPS falls in the alert week; (support, call_center) NPS is bad
  from 2026-03-02 on; billing complaints spike.
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta, timezone

from bot.domain.enums import Channel, FeedbackKind, Stage
from tests.fix_first_data import CustomerPlan, JourneyPlan, RowPlan

NOW = datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc)
FIRST_WEEK = date(2025, 12, 29)
WEEKS = 13
ALERT_WEEK = date(2026, 3, 23)
PITFALL_FROM = date(2026, 3, 2)
CHANNELS = (Channel.website_chat, Channel.email, Channel.call_center)
STAGES = (Stage.purchase, Stage.use, Stage.support)


def _at(day: date, rng: random.Random) -> datetime:
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return start + timedelta(hours=rng.uniform(1, 6 * 24 + 20))


def generate(seed: int, planted: str) -> list[CustomerPlan]:
    rng = random.Random(seed)
    plans = []
    for w in range(WEEKS):
        monday = FIRST_WEEK + timedelta(weeks=w)
        alert_week = monday == ALERT_WEEK
        late = monday >= PITFALL_FROM
        for i in range(40):
            opened = _at(monday, rng)
            stage = rng.choice(STAGES)
            channel = rng.choice(CHANNELS)
            journey = JourneyPlan(opened - timedelta(minutes=30), stage)
            answers: list[tuple[FeedbackKind, int | None, str | None]] = []
            bad_csat = planted == "csat_email_delivery" and (
                alert_week or (late and (stage, channel) == (Stage.use, Channel.email))
            )
            bad_nps = planted == "nps_callcenter_billing" and (
                alert_week or (late and (stage, channel) == (Stage.support, Channel.call_center))
            )
            good = rng.random() < (0.15 if bad_csat else 0.8)
            answers.append(
                (FeedbackKind.csat, rng.choice((4, 5)) if good else rng.choice((1, 2, 3)), None)
            )
            low_nps = bad_nps and rng.random() < 0.8
            nps = rng.choice((0, 3, 5)) if low_nps else rng.choice((6, 8, 9, 10, 10))
            answers.append((FeedbackKind.nps, nps, None))
            answers.append((FeedbackKind.ces, rng.choice((1, 2, 2, 3, 4, 5)), None))
            if rng.random() < 0.1:
                theme = rng.choice(("delivery", "billing", "product_quality"))
                answers.append((FeedbackKind.comment, None, theme))
            spike = "delivery" if planted == "csat_email_delivery" else "billing"
            if alert_week and i < 14:
                answers.append((FeedbackKind.comment, None, spike))
            for k, (kind, score, about) in enumerate(answers):
                at = opened + timedelta(minutes=k + 1)
                journey.rows.append(RowPlan(stage, channel, kind, score, at, about))
            plans.append(CustomerPlan(f"W{seed}-{w}-{i}", [journey]))
    return plans


# ---- the reference ------------------------------------------------------------------------


def _week(at: datetime) -> date:
    day = at.date()
    return day - timedelta(days=day.weekday())


def _values(rows: list[RowPlan]) -> dict[str, tuple[float | None, int]]:
    def scores(kind: FeedbackKind) -> list[int]:
        return [r.score for r in rows if r.kind is kind and r.score is not None]

    csat, nps, ces = scores(FeedbackKind.csat), scores(FeedbackKind.nps), scores(FeedbackKind.ces)
    return {
        "csat": (
            round(100 * sum(s >= 4 for s in csat) / len(csat), 1) if csat else None,
            len(csat),
        ),
        "nps": (
            round(100 * (sum(s >= 9 for s in nps) - sum(s <= 6 for s in nps)) / len(nps), 1)
            if nps
            else None,
            len(nps),
        ),
        "ces": (round(sum(ces) / len(ces), 2) if ces else None, len(ces)),
    }


def rows_of(plans: list[CustomerPlan]) -> list[RowPlan]:
    return [r for p in plans for j in p.journeys for r in j.rows]


def expected_keys(plans: list[CustomerPlan], band_sd: float = 2.0) -> set[str]:
    """The alert keys of the alert week by the rules of docs/dashboard.md (min answers 10)."""
    rows = rows_of(plans)
    weeks: dict[date, list[RowPlan]] = {}
    for r in rows:
        weeks.setdefault(_week(r.created_at), []).append(r)
    base_weeks = [ALERT_WEEK - timedelta(weeks=k) for k in range(8, 0, -1)]
    keys = set()
    this = _values(weeks[ALERT_WEEK])
    for metric in ("csat", "nps", "ces"):
        base = [v for wk in base_weeks if (v := _values(weeks[wk])[metric])[1] >= 10]
        values = [float(v[0]) for v in base if v[0] is not None]
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        value = this[metric][0]
        assert value is not None
        if sd and not (mean - band_sd * sd <= value <= mean + band_sd * sd):
            keys.add(f"metric_band:{metric}:{ALERT_WEEK.isoformat()}")
    for theme in ("delivery", "billing", "product_quality"):
        count = sum(1 for r in weeks[ALERT_WEEK] if r.theme == theme)
        base_counts = [sum(1 for r in weeks[wk] if r.theme == theme) for wk in base_weeks]
        mean = sum(base_counts) / 8
        sd = math.sqrt(sum((c - mean) ** 2 for c in base_counts) / 8)
        if count >= 5 and count >= 2 * mean and count > mean + band_sd * sd:
            keys.add(f"theme_spike:{theme}:{ALERT_WEEK.isoformat()}")
    return keys
