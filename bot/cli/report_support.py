"""The support-operations part of `python -m bot report` (issue #21): the figures of
GET /api/support (bot/domain/support_ops.py) as Markdown or CSV rows."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain import labels, support_ops
from bot.domain.feedback_query import DateRange
from bot.storage.models import utcnow

COLUMNS = (
    "escalations",
    "first_reply_mean_minutes",
    "replied",
    "first_reply_within_sla_percent",
    "resolution_mean_hours",
    "resolved",
    "resolution_within_sla_percent",
    "first_reply_breaches",
    "resolution_breaches",
)


def _cells(o: dict[str, Any]) -> list[Any]:
    reply, resolution, breaches = o["first_reply"], o["resolution"], o["sla_breaches"]
    return [
        o["escalations"],
        reply["mean_minutes"],
        reply["replied"],
        reply["within_sla_percent"],
        resolution["mean_hours"],
        resolution["resolved"],
        resolution["within_sla_percent"],
        breaches["first_reply"],
        breaches["resolution"],
    ]


def _rows(body: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(section, label, figures) of the total, reasons, priorities and agents."""
    rows = [("total", "all escalations", body["total"])]
    rows += [("reason", labels.label("reason", r["reason"]), r) for r in body["by_reason"]]
    rows += [
        ("priority", labels.label("priority", str(p["priority"])), p) for p in body["by_priority"]
    ]
    rows += [("agent", a["name"], a) for a in body["agents"]]
    return rows


def _md(value: Any) -> str:
    return "–" if value is None else str(value).replace("|", "\\|")


def render(body: dict[str, Any], fmt: str) -> str:
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["section", "label", *COLUMNS, "support_csat_percent", "support_ces"])
        for section, label, o in _rows(body):
            survey = (
                [o["csat"]["percent"], o["ces"]["mean"]] if section == "agent" else [None, None]
            )
            name = "'" + label if label.startswith(("=", "+", "-", "@", "\t", "\r")) else label
            writer.writerow(
                [
                    f"support_{section}",
                    name,
                    *("" if v is None else v for v in _cells(o)),
                    *("" if v is None else v for v in survey),
                ]
            )
        return buffer.getvalue()
    sla = body["sla"]
    lines = [
        "",
        "## Support operations",
        "",
        f"Escalations opened in the range. SLA: first agent reply within "
        f"{sla['first_reply_minutes']} min, resolution within {sla['resolution_hours']} h; "
        "means with their n (docs/dashboard.md).",
        "",
        "| group | "
        + " | ".join(c.replace("_", " ") for c in COLUMNS)
        + " | support CSAT % | support CES |",
        "| --- |" + " ---: |" * (len(COLUMNS) + 2),
    ]
    for section, label, o in _rows(body):
        survey = [o["csat"]["percent"], o["ces"]["mean"]] if section == "agent" else [None, None]
        cells = [label if section == "total" else f"{section}: {label}", *_cells(o), *survey]
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


async def section(
    session: AsyncSession,
    date_range: DateRange,
    fmt: str,
    settings: Settings,
    now: datetime | None = None,
) -> str:
    rules = support_ops.SlaRules(
        first_reply_minutes=settings.escalation_aging_minutes,
        resolution_hours=settings.support_sla_resolution_hours,
    )
    found = await support_ops.support_operations(session, date_range, now or utcnow(), rules)
    return render(found.as_json(settings.dashboard_min_answers), fmt)
