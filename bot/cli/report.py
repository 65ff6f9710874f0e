"""`python -m bot report`: the dashboard's overview and breakdowns in a terminal (md or csv).

The numbers come from the same domain functions as /api/metrics (bot.domain.metrics).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.cli import report_loyalty, report_support
from bot.cli.common import fail, run_db_command
from bot.config import Settings
from bot.domain import metrics
from bot.domain.feedback_query import FeedbackFilter, parse_range
from bot.domain.metrics import GroupMetrics, MetricCounts, Overview

if TYPE_CHECKING:
    from bot.cli.common import Sessions, Subparsers

DIMENSION_TITLES = {
    "stage": "Lifecycle stage",
    "channel": "Channel",
    "product": "Product",
    "acquisition_source": "Acquisition source",
    "trigger": "Survey trigger",
}
COLUMNS: tuple[tuple[str, Callable[[MetricCounts], Any]], ...] = (
    ("volume", lambda c: c.volume),
    ("csat_percent", lambda c: c.csat_percent),
    ("csat_responses", lambda c: c.csat_responses),
    ("nps", lambda c: c.nps),
    ("nps_responses", lambda c: c.nps_responses),
    ("ces", lambda c: c.ces),
    ("response_rate_percent", lambda c: c.response_rate),
    ("sentiment", lambda c: c.sentiment),
)


async def build_report(
    session: AsyncSession, flt: FeedbackFilter
) -> tuple[Overview, dict[str, list[GroupMetrics]]]:
    overview = await metrics.overview(session, flt, None)
    breakdowns = {d: await metrics.breakdown(session, flt, d) for d in metrics.DIMENSIONS}
    return overview, breakdowns


def _cell(value: Any) -> str:
    return "–" if value is None else str(value)


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def render_markdown(overview: Overview, breakdowns: dict[str, list[GroupMetrics]]) -> str:
    r, p = overview.range, overview.range.previous()
    lines = [
        f"# CX report {r.start.isoformat()} to {r.end.isoformat()} ({r.tz.key})",
        "",
        f"Previous period: {p.start.isoformat()} to {p.end.isoformat()}.",
        "",
        "## Overview",
        "",
        _md_row(["metric", "this period", "previous period"]),
        _md_row(["---", "---:", "---:"]),
    ]
    for name, get in COLUMNS:
        lines.append(_md_row([name, _cell(get(overview.current)), _cell(get(overview.previous))]))
    for dimension, groups in breakdowns.items():
        lines += ["", f"## By {DIMENSION_TITLES[dimension].lower()}", ""]
        lines.append(_md_row(["group", *(n for n, _ in COLUMNS), "previous volume"]))
        lines.append(_md_row(["---"] + ["---:"] * (len(COLUMNS) + 1)))
        for g in groups:
            values = [_cell(get(g.counts)) for _, get in COLUMNS]
            lines.append(_md_row([g.label, *values, str(g.previous.volume)]))
        if not groups:
            lines.append("(no feedback)")
    return "\n".join(lines) + "\n"


def render_csv(overview: Overview, breakdowns: dict[str, list[GroupMetrics]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["section", "key", "label", "period", *(n for n, _ in COLUMNS)])
    for period, counts in (("current", overview.current), ("previous", overview.previous)):
        writer.writerow(["overview", "", "", period, *(_csv(get(counts)) for _, get in COLUMNS)])
    for dimension, groups in breakdowns.items():
        for g in groups:
            for period, counts in (("current", g.counts), ("previous", g.previous)):
                writer.writerow(
                    [
                        dimension,
                        _safe(g.key),
                        _safe(g.label),
                        period,
                        *(_csv(get(counts)) for _, get in COLUMNS),
                    ]
                )
    return buffer.getvalue()


def _csv(value: Any) -> str:
    return "" if value is None else str(value)


def _safe(text: str) -> str:
    # Product names come from the shop: never let a spreadsheet run them as formulas.
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


# ---- the command -------------------------------------------------------------------------


def add_commands(sub: Subparsers) -> None:
    report = sub.add_parser("report", help="CX metrics overview and breakdowns (md or csv)")
    report.add_argument("--from", dest="date_from", required=True, help="first day, YYYY-MM-DD")
    report.add_argument("--to", dest="date_to", required=True, help="last day, YYYY-MM-DD")
    report.add_argument("--tz", default="UTC", help="IANA time zone of the days (default UTC)")
    report.add_argument("--format", choices=("md", "csv"), default="md")
    report.set_defaults(handler=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.domain.errors import InvalidInput

    try:
        date_range = parse_range(args.date_from, args.date_to, args.tz)
    except InvalidInput as exc:
        return fail(
            exc.message.replace("'from'", "--from").replace("'to'", "--to").replace("'tz'", "--tz")
        )

    async def body(sessions: Sessions) -> int:
        async with sessions() as session:
            overview, breakdowns = await build_report(session, FeedbackFilter(date_range))
            extra = await report_loyalty.section(session, date_range, args.format)  # issue #10
            extra += await report_support.section(session, date_range, args.format, settings)
        render = render_markdown if args.format == "md" else render_csv
        sys.stdout.write(render(overview, breakdowns) + extra)
        return 0

    return asyncio.run(run_db_command(settings, body))
