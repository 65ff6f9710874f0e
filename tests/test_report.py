"""`python -m bot report`: the overview and breakdowns as Markdown or CSV."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot import cli
from bot.cli import report
from bot.domain.feedback_query import DateRange, FeedbackFilter
from bot.storage.db import create_engine, create_session_factory
from bot.storage.models import Base
from tests.dashboard_data import seed

MARCH = FeedbackFilter(DateRange(date(2026, 3, 1), date(2026, 3, 31)))


async def test_markdown_report_has_the_overview_and_every_breakdown(session_factory: Any) -> None:
    await seed(session_factory)
    async with session_factory() as db:
        overview, breakdowns = await report.build_report(db, MARCH)
    text = report.render_markdown(overview, breakdowns)
    assert text.startswith("# CX report 2026-03-01 to 2026-03-31 (UTC)\n")
    assert "Previous period: 2026-01-29 to 2026-02-28." in text
    assert "| csat_percent | 50.0 | 100.0 |" in text
    assert "| nps | 16.7 | – |" in text
    assert "| response_rate_percent | 66.7 | 100.0 |" in text
    for title in ("lifecycle stage", "channel", "product", "acquisition source", "survey trigger"):
        assert f"## By {title}" in text
    assert "| support | 7 | 0.0 | 2 | 50.0 | 2 | 3.5 | – | -0.5 | 0 |" in text
    assert "| Alpha mug | 6 | 50.0 | 4 | – | 0 | – | – | 0.15 | 0 |" in text


async def test_csv_report_rows(session_factory: Any) -> None:
    await seed(session_factory)
    async with session_factory() as db:
        overview, breakdowns = await report.build_report(db, MARCH)
    rows = list(csv.DictReader(io.StringIO(report.render_csv(overview, breakdowns))))
    current = rows[0]
    assert (current["section"], current["period"], current["volume"], current["nps"]) == (
        "overview",
        "current",
        "15",
        "16.7",
    )
    product = [r for r in rows if r["section"] == "product" and r["period"] == "current"]
    assert [(r["key"], r["volume"], r["csat_percent"]) for r in product] == [
        ("SKU-A", "6", "50.0"),
        ("SKU-B", "3", "100.0"),
    ]


def test_cli_prints_the_report_and_refuses_bad_dates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'report.db'}"

    async def prepare() -> None:
        engine = create_engine(url)
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        await seed(create_session_factory(engine))
        await engine.dispose()

    asyncio.run(prepare())
    monkeypatch.setenv("DATABASE_URL", url)
    assert (
        cli.main(["report", "--from", "2026-03-01", "--to", "2026-03-31", "--format", "csv"]) == 0
    )
    out = capsys.readouterr().out
    assert out.splitlines()[1] == "overview,,,current,15,50.0,4,16.7,6,3.5,66.7,0.15"

    assert cli.main(["report", "--from", "2026-03-01", "--to", "2026-02-31"]) == 1
    assert "--to must be a date YYYY-MM-DD" in capsys.readouterr().err
    assert (
        cli.main(["report", "--from", "2026-03-01", "--to", "2026-03-31", "--tz", "Moon/Base"]) == 1
    )
    assert "--tz must be an IANA time zone" in capsys.readouterr().err
