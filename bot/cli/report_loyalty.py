"""The loyalty and insight sections of `python -m bot report` (bot/cli/report.py calls `section`).

Markdown: loyalty figures for the report's range (first purchases in it, 90-day window, as of
now), return rate by the experience of the lifecycle before, the cohort table, and the
insight board (count by status; before/after of every applied insight). CSV: one row per
applied insight and period (before/after) in the report's own columns.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import insights, loyalty
from bot.domain.enums import InsightStatus
from bot.domain.feedback_query import DateRange
from bot.domain.metrics import MetricCounts
from bot.storage.models import Insight, utcnow

GROUP_TITLES = (
    ("by_csat", "CSAT band of the lifecycle"),
    ("by_nps", "NPS band of the lifecycle"),
    ("by_support", "Support in the lifecycle"),
    ("by_acquisition", "Acquisition source"),
)


def _cell(value: Any) -> str:
    return "–" if value is None else str(value)


def _row(cells: list[Any]) -> str:
    text = [_cell(c).replace("|", "\\|").replace("\n", " ") for c in cells]
    return "| " + " | ".join(text) + " |"


def _loyalty_md(found: loyalty.LoyaltyOverview, table: loyalty.CohortTable) -> list[str]:
    r, lc, rn = found.repeat, found.lifecycles, found.renewal
    lines = [
        "",
        f"## Loyalty (first purchases in the range, {found.query.window_days}-day window)",
        "",
        _row(["figure", "value", "base"]),
        _row(["---", "---:", "---"]),
        _row(
            [
                "repeat rate %",
                r.rate,
                f"{r.repeaters} of {r.customers} customers; {r.pending} too recent",
            ]
        ),
        _row(
            [
                "lifecycles per customer",
                lc.per_customer,
                f"{lc.lifecycles} lifecycles, {lc.customers} customers ({lc.new_customers} new)",
            ]
        ),
        _row(["subscription renewal %", rn.rate, f"{rn.renewed} of {rn.periods} periods"]),
        _row(
            [
                "return rate %",
                found.returns.overall.rate,
                f"{found.returns.overall.returned} of {found.returns.overall.lifecycles} "
                "lifecycles",
            ]
        ),
    ]
    for key, title in GROUP_TITLES:
        lines += ["", f"### Return rate by {title.lower()}", ""]
        lines += [
            _row(["group", "lifecycles", "returned", "rate %"]),
            _row(["---", "---:", "---:", "---:"]),
        ]
        for g in getattr(found.returns, key):
            lines.append(_row([g.key, g.lifecycles, g.returned, g.rate]))
    lines += ["", "### Retention by month of first purchase (% of the cohort)", ""]
    lines.append(_row(["cohort", "customers", *(f"M{k}" for k in range(table.months))]))
    lines.append(_row(["---", "---:", *(["---:"] * table.months)]))
    for cohort in table.cohorts:
        cells = [c.percent if c else "" for c in cohort.cells]
        lines.append(_row([cohort.month.strftime("%Y-%m"), cohort.customers, *cells]))
    if not table.cohorts:
        lines.append("(no first purchases in the range)")
    return lines


async def _applied(session: AsyncSession, now: datetime) -> list[tuple[Insight, Any]]:
    found = await session.scalars(
        select(Insight).where(Insight.status == InsightStatus.applied).order_by(Insight.applied_at)
    )
    return [(i, await insights.compare(session, i, now)) for i in found]


async def _insights_md(session: AsyncSession, now: datetime) -> list[str]:
    board = await insights.board(session, now)
    counts = {s: sum(1 for i in board if i["status"] == s.value) for s in insights.BOARD_ORDER}
    lines = [
        "",
        "## Insights",
        "",
        ", ".join(f"{s.value.replace('_', ' ')}: {n}" for s, n in counts.items()),
        "",
    ]
    applied = await _applied(session, now)
    if not applied:
        return [*lines, "(no applied insight yet)"]
    lines += [
        _row(
            [
                "insight",
                "team",
                "applied",
                "CSAT % before",
                "after",
                "NPS before",
                "after",
                "negative % before",
                "after",
                "customers told",
            ]
        ),
        _row(["---", "---", "---", *(["---:"] * 7)]),
    ]
    stats = await insights.link_stats(session, [i.id for i, _ in applied])
    for insight, comparison in applied:
        c = comparison.as_json() if comparison else None
        b, a = (c["before"], c["after"]) if c else ({}, {})

        def get(side: dict[str, Any], *path: str) -> Any:
            value: Any = side
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            return value

        told = stats.get(insight.id, insights.LinkStats()).told
        applied_on = insight.applied_at.date().isoformat() if insight.applied_at else None
        lines.append(
            _row(
                [
                    insight.title,
                    insight.owner_team.value,
                    applied_on,
                    get(b, "csat", "percent"),
                    get(a, "csat", "percent"),
                    get(b, "nps", "score"),
                    get(a, "nps", "score"),
                    get(b, "negative", "percent"),
                    get(a, "negative", "percent"),
                    told,
                ]
            )
        )
    return lines


def _counts_cells(counts: MetricCounts) -> list[str]:
    values = (
        counts.volume,
        counts.csat_percent,
        counts.csat_responses,
        counts.nps,
        counts.nps_responses,
        counts.ces,
        None,
        counts.sentiment,
    )
    return ["" if v is None else str(v) for v in values]


def _safe(text: str) -> str:
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


async def _insights_csv(session: AsyncSession, now: datetime) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for insight, comparison in await _applied(session, now):
        if comparison is None:
            continue
        for period, counts in (("before", comparison.before), ("after", comparison.after)):
            writer.writerow(
                ["insight", str(insight.id), _safe(insight.title), period, *_counts_cells(counts)]
            )
    return buffer.getvalue()


async def section(
    session: AsyncSession, date_range: DateRange, fmt: str, now: datetime | None = None
) -> str:
    """The text to append to the report in format `fmt` ("md" or "csv")."""
    now = now or utcnow()
    if fmt == "csv":
        return await _insights_csv(session, now)
    query = loyalty.LoyaltyQuery(date_range, now, loyalty.DEFAULT_WINDOW_DAYS)
    found = await loyalty.overview(session, query)
    table = await loyalty.cohorts(session, date_range, now)
    lines = _loyalty_md(found, table) + await _insights_md(session, now)
    return "\n".join(lines) + "\n"
