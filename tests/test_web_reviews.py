"""Feedback from the open web (issue #23): the Trustpilot, Judge.me, Google Business Profile
and social-mention importers with the sample files of tests/data/imports/ (broken rows, a
BOM, UTF-16, quoted multi-line text, duplicates, edited reviews), reviewers who are not
known customers, and the exact metrics and journey map with them included."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import cli
from bot.domain import (
    journey,
    metrics,
    reviewer_privacy,
    share_of_voice,
    shop_events,
    web_reviews,
)
from bot.domain.enums import Channel, FeedbackKind, StaffRole, Stage
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.feedback_query import DateRange, FeedbackFilter, feedback_page
from bot.storage.models import AuditLog, Customer, Escalation, Feedback, Lifecycle, Reviewer
from tests import factories
from tests.staff_helpers import bearer, create_api_token
from tests.test_shop_events import order_event

Client = TestClient[Any, Any]
Sessions = async_sessionmaker[AsyncSession]
DATA = Path(__file__).parent / "data" / "imports"
NOVEMBER = FeedbackFilter(DateRange(date(2026, 11, 1), date(2026, 11, 30)))


async def run_import(
    sessions: Sessions, name: str, content: bytes
) -> tuple[web_reviews.ImportReport, list[Escalation]]:
    fmt = web_reviews.get_format(name)
    report, ids = await web_reviews.import_reviews(
        sessions,
        web_reviews.read_reviews(io.BytesIO(content), fmt),
        due_hours=48,
        unit="review" if fmt.json else "line",
    )
    async with sessions() as session:
        opened = await session.scalars(
            select(Escalation).where(Escalation.id.in_(ids)).order_by(Escalation.id)
        )
        return report, list(opened)


async def shop(sessions: Sessions) -> tuple[int, int]:
    """Kim (C9001) with order A19001 (its lifecycle in purchase) and Ann, a customer known
    by email only. Returns (Kim's order lifecycle id, Ann's customer id)."""
    await shop_events.receive(
        sessions, shop_events.parse_event(order_event("e1", "placed", 0, "A19001"))
    )
    async with sessions() as session, session.begin():
        ann = await factories.customer(session, 2, email="Ann.Lee@example.com")
        lifecycle = await session.scalar(select(Lifecycle).where(Lifecycle.order_id.is_not(None)))
        assert lifecycle is not None and lifecycle.stage is Stage.purchase
        return lifecycle.id, ann.id


def summary(rows: list[Feedback]) -> list[tuple[Any, ...]]:
    return [
        (
            r.idempotency_key,
            r.kind.value,
            r.score,
            r.customer_id is None,
            r.reviewer_id is None,
            r.stage.value if r.stage else None,
            r.channel.value,
            r.platform,
        )
        for r in rows
    ]


async def all_feedback(sessions: Sessions) -> list[Feedback]:
    async with sessions() as session:
        return list((await session.scalars(select(Feedback).order_by(Feedback.id))).all())


async def test_trustpilot_export_bom_multiline_broken_rows_and_duplicates(
    session_factory: Sessions,
) -> None:
    kims_journey, ann = await shop(session_factory)
    content = (DATA / "trustpilot.csv").read_bytes()
    assert content.startswith(b"\xef\xbb\xbf")
    report, escalations = await run_import(session_factory, "trustpilot", content)
    assert report.as_json() == {
        "imported": 3,
        "updated": 0,
        "duplicates": 1,
        "unattributed": 1,
        "escalations": 1,
        "errors": [
            {"line": 6, "message": "'Review Created (UTC)' is not a date-time: 'not a date'"},
            {"line": 7, "message": "'Review Stars' must be 1 to 5 stars, not 'seven'"},
            {"line": 8, "message": "more values than columns (12 for 11)"},
        ],
    }
    rows = await all_feedback(session_factory)
    assert summary(rows) == [
        (
            "web:trustpilot:tp-1001",
            "csat",
            5,
            False,
            True,
            "discovery",
            "review_site",
            "trustpilot",
        ),
        (
            "web:trustpilot:tp-1001:comment",
            "comment",
            None,
            False,
            True,
            "discovery",
            "review_site",
            "trustpilot",
        ),
        ("web:trustpilot:tp-1002", "csat", 1, False, True, "purchase", "review_site", "trustpilot"),
        (
            "web:trustpilot:tp-1002:comment",
            "comment",
            None,
            False,
            True,
            "purchase",
            "review_site",
            "trustpilot",
        ),
        ("web:trustpilot:tp-1003", "csat", 3, True, False, None, "review_site", "trustpilot"),
        (
            "web:trustpilot:tp-1003:comment",
            "comment",
            None,
            True,
            False,
            None,
            "review_site",
            "trustpilot",
        ),
    ]
    assert rows[0].customer_id == ann  # matched by email, case-insensitively
    assert rows[2].lifecycle_id == kims_journey  # matched by the order number (Reference Id)
    assert rows[2].order_id is not None
    # The quoted text over two lines is one review, kept whole, with sentiment and themes.
    assert (
        rows[3].text
        == "Broken lid\n\nThe lid arrived broken.\nNobody answered my email for a week."
    )
    assert rows[3].sentiment is not None and rows[3].sentiment < 0
    assert rows[3].themes == ["delivery", "product_quality", "support"]
    assert rows[0].source_url == "https://www.trustpilot.com/reviews/tp-1001"
    # The 1-star review opened a follow-up marked to be answered in public.
    assert [e.feedback_id for e in escalations] == [rows[2].id]
    assert escalations[0].summary == (
        "Reply publicly https://www.trustpilot.com/reviews/tp-1002 — review site: csat 1 — "
        "Broken lid\n\nThe lid arrived broken.\nNobody answered my email for a week."
    )
    async with session_factory() as session:
        reviewers = (await session.execute(select(Reviewer.channel, Reviewer.handle))).all()
        customers = await session.scalar(select(func.count()).select_from(Customer))
    assert [tuple(r) for r in reviewers] == [(Channel.review_site, "cu-503")]
    assert customers == 2  # nobody invented

    again, opened = await run_import(session_factory, "trustpilot", content)
    assert (again.imported, again.updated, again.duplicates, opened) == (0, 0, 4, [])
    assert len(await all_feedback(session_factory)) == 6


async def test_a_refused_batch_is_written_review_by_review(
    session_factory: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refusing a batch (here: any batch of more than one review, and the
    review tp-1003 on its own): the others are stored one at a time, the refused one is
    reported at its line, and nothing of it is written."""
    await shop(session_factory)
    real = web_reviews._store_batch

    async def refusing(
        session: AsyncSession, reviews: list[web_reviews.WebReview], *args: Any
    ) -> Any:
        if len(reviews) > 1 or reviews[0].review_id == "tp-1003":
            raise RuntimeError("refused")
        return await real(session, reviews, *args)

    monkeypatch.setattr(web_reviews, "_store_batch", refusing)
    content = (DATA / "trustpilot.csv").read_bytes()
    report, escalations = await run_import(session_factory, "trustpilot", content)
    assert report.as_json() == {
        "imported": 2,
        "updated": 0,
        "duplicates": 1,
        "unattributed": 0,
        "escalations": 1,
        "errors": [
            {"line": 5, "message": "not stored: RuntimeError"},
            {"line": 6, "message": "'Review Created (UTC)' is not a date-time: 'not a date'"},
            {"line": 7, "message": "'Review Stars' must be 1 to 5 stars, not 'seven'"},
            {"line": 8, "message": "more values than columns (12 for 11)"},
        ],
    }
    assert [r[0] for r in summary(await all_feedback(session_factory))] == [
        "web:trustpilot:tp-1001",
        "web:trustpilot:tp-1001:comment",
        "web:trustpilot:tp-1002",
        "web:trustpilot:tp-1002:comment",
    ]
    assert len(escalations) == 1


async def test_utf16_with_bom_reads_the_same(session_factory: Sessions) -> None:
    await shop(session_factory)
    text = (DATA / "trustpilot.csv").read_bytes().decode("utf-8-sig")
    report, _ = await run_import(session_factory, "trustpilot", text.encode("utf-16"))
    assert (report.imported, report.duplicates, len(report.errors)) == (3, 1, 3)


async def test_edited_reviews_are_updated_in_place(session_factory: Sessions) -> None:
    await shop(session_factory)
    await run_import(session_factory, "trustpilot", (DATA / "trustpilot.csv").read_bytes())
    before = {r.idempotency_key: r.id for r in await all_feedback(session_factory)}
    report, opened = await run_import(
        session_factory, "trustpilot", (DATA / "trustpilot_edited.csv").read_bytes()
    )
    assert report.as_json() == {
        "imported": 0,
        "updated": 2,
        "duplicates": 1,
        "unattributed": 0,
        "escalations": 0,
        "errors": [],
    }
    assert opened == []
    rows = {r.idempotency_key: r for r in await all_feedback(session_factory)}
    assert sorted(rows) == sorted(set(before) - {"web:trustpilot:tp-1003:comment"})
    assert rows["web:trustpilot:tp-1002"].id == before["web:trustpilot:tp-1002"]
    assert rows["web:trustpilot:tp-1002"].score == 4
    edited = rows["web:trustpilot:tp-1002:comment"]
    assert edited.text == "Lid replaced\n\nThe shop sent a new lid. Thank you!"
    assert edited.sentiment is not None and edited.sentiment > 0
    async with session_factory() as session:
        counts = await metrics.metric_counts(session, NOVEMBER)
    assert (counts.volume, counts.csat_responses, counts.csat_satisfied) == (5, 3, 2)


async def test_judgeme_google_and_social_exports(session_factory: Sessions) -> None:
    await shop(session_factory)
    judge, judge_followups = await run_import(
        session_factory, "judgeme", (DATA / "judgeme.csv").read_bytes()
    )
    assert judge.as_json() == {
        "imported": 3,
        "updated": 0,
        "duplicates": 0,
        "unattributed": 3,
        "escalations": 1,
        "errors": [{"line": 5, "message": "'rating' must be 1 to 5 stars, not ''"}],
    }
    google, google_followups = await run_import(
        session_factory, "google", (DATA / "google_reviews.json").read_bytes()
    )
    assert google.as_json() == {
        "imported": 3,
        "updated": 0,
        "duplicates": 0,
        "unattributed": 3,
        "escalations": 1,
        "errors": [
            {
                "review": 3,
                "message": "'starRating' must be ONE to FIVE, not 'STAR_RATING_UNSPECIFIED'",
            }
        ],
    }
    social, social_followups = await run_import(
        session_factory, "social", (DATA / "social.csv").read_bytes()
    )
    assert social.as_json() == {
        "imported": 3,
        "updated": 0,
        "duplicates": 0,
        "unattributed": 3,
        "escalations": 1,
        "errors": [{"line": 4, "message": "'url' is empty"}],
    }
    rows = await all_feedback(session_factory)
    by_platform: dict[str, list[tuple[str, int | None]]] = {}
    for row in rows:
        by_platform.setdefault(row.platform or "", []).append((row.kind.value, row.score))
    assert by_platform == {
        "judgeme": [
            ("csat", 5),
            ("comment", None),
            ("csat", 2),
            ("comment", None),
            ("csat", 4),
            ("comment", None),
        ],
        "google": [("csat", 4), ("comment", None), ("csat", 1), ("comment", None), ("csat", 5)],
        "instagram": [("comment", None)],
        "x": [("comment", None), ("comment", None)],
    }
    assert {r.channel for r in rows if r.platform == "judgeme"} == {Channel.storefront}
    assert {r.channel for r in rows if r.platform == "google"} == {Channel.review_site}
    async with session_factory() as session:
        reviewers = (
            await session.execute(
                select(Reviewer.channel, Reviewer.handle, Reviewer.email).order_by(Reviewer.id)
            )
        ).all()
    # (ids in file order on SQLite; PostgreSQL inserts a batch's new reviewers sorted)
    assert sorted(tuple(r) for r in reviewers) == sorted(
        [
            (Channel.storefront, "lena@example.com", "lena@example.com"),
            (Channel.storefront, "paul.k@example.com", "paul.k@example.com"),
            (Channel.storefront, "Anonymous", None),
            (Channel.review_site, "Sara Q", None),
            (Channel.review_site, "anonymous", None),
            (Channel.review_site, "Leo", None),
            (Channel.social, "@cookwithkai", None),
            (Channel.social, "@angry_dan", None),
            (Channel.social, "@tom_b", "tom.becker@example.com"),
        ]
    )
    summaries = [e.summary for e in judge_followups + google_followups + social_followups]
    assert [s.split(" — ")[0] for s in summaries if s] == [
        "Reply publicly on judgeme",
        "Reply publicly on google",
        "Reply publicly https://x.com/someone/status/1",
    ]
    assert all(e.customer_id is None for e in judge_followups + social_followups)


async def test_exact_metrics_and_journey_with_unknown_reviewers(session_factory: Sessions) -> None:
    await shop(session_factory)
    await run_import(session_factory, "trustpilot", (DATA / "trustpilot.csv").read_bytes())
    await run_import(session_factory, "social", (DATA / "social.csv").read_bytes())
    async with session_factory() as session:
        total = await metrics.metric_counts(session, NOVEMBER)
        raw = await metrics.metric_counts(  # the same from the rows, not the rollups
            session, FeedbackFilter(NOVEMBER.range, kinds=tuple(FeedbackKind))
        )
        stages = await metrics.breakdown(session, NOVEMBER, "stage")
        channels = await metrics.breakdown(session, NOVEMBER, "channel")
        sources = await metrics.breakdown(session, NOVEMBER, "acquisition_source")
        products = await metrics.breakdown(session, NOVEMBER, "product")
        themes = await metrics.breakdown(  # from the rows (a kinds filter), not the rollups
            session, FeedbackFilter(NOVEMBER.range, kinds=tuple(FeedbackKind)), "product"
        )
        jmap = await journey.journey_map(session, NOVEMBER, journey.PitfallThresholds())
        page = await feedback_page(
            session, FeedbackFilter(NOVEMBER.range, channels=(Channel.social,))
        )
    explorer = page.rows
    # 6 Trustpilot rows (3 csat: 5, 1, 3) + 3 social comments.
    for counts in (total, raw):
        assert (counts.volume, counts.csat_responses, counts.csat_satisfied) == (9, 3, 1)
        assert counts.csat_percent == 33.3
    assert [(g.key, g.counts.volume) for g in stages] == [
        ("discovery", 2),
        ("purchase", 2),
        ("unattributed", 5),
    ]
    assert [(g.key, g.counts.volume) for g in channels] == [("review_site", 6), ("social", 3)]
    assert sum(g.counts.volume for g in sources) == 9
    # The review matched by order number counts for the order's product, in the rollup
    # (PostgreSQL: added by rollup.delta_ddl) as in the rows.
    assert [(g.key, g.counts.volume, g.counts.csat_responses) for g in products] == [
        ("MUG-1", 2, 1)
    ]
    assert [(g.key, g.counts.volume) for g in themes] == [("MUG-1", 2)]
    column = jmap.stages[-1]
    assert column.stage == "unattributed"
    assert [(c.channel, c.counts.volume, c.counts.csat_responses) for c in column.channels] == [
        ("social", 3, 0),
        ("review_site", 2, 1),
    ]
    assert [s.stage for s in jmap.stages[:-1]] == [s.value for s in Stage]
    assert sorted((r.text or "")[:12] for r in explorer) == [
        "@shop worst ",
        "Loving my ne",
        "Waiting for ",
    ]
    row = next(r for r in explorer if (r.text or "").startswith("@shop"))
    assert row.as_json()["customer"] is None
    assert row.as_json()["reviewer"] == {"handle": "@angry_dan", "channel": "social"}
    assert row.as_json()["source_url"] == "https://x.com/someone/status/1"
    assert row.stage == "unattributed"


def test_missing_column_and_unknown_format_are_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown format 'yelp' \\(known: product, trustpilot"):
        web_reviews.get_format("yelp")
    header = b"Review ID,Review Created (UTC),Review Content\ntp-1,2026-11-01,hi\n"
    with pytest.raises(InvalidInput, match="missing column 'Review Stars' for format trustpilot"):
        list(web_reviews.read_reviews(io.BytesIO(header), web_reviews.FORMATS["trustpilot"]))
    with pytest.raises(InvalidInput, match="missing field 'reviews'"):
        list(web_reviews.read_reviews(io.BytesIO(b'{"x": 1}'), web_reviews.FORMATS["google"]))
    latin = "platform,url,author,time,text\nx,https://x.com/1,a,2026-11-01,caf\xe9\n"
    with pytest.raises(InvalidInput, match="not UTF-8"):
        list(
            web_reviews.read_reviews(
                io.BytesIO(latin.encode("latin-1")), web_reviews.FORMATS["social"]
            )
        )


def test_unclosed_quote_is_reported_at_its_line() -> None:
    content = (
        b"platform,url,author,time,text\n"
        b'x,https://x.com/1,a,2026-11-01T00:00:00Z,"fine,\nover two lines"\n'
        b'x,https://x.com/2,b,2026-11-01T00:00:00Z,"never closed\n'
        b"x,https://x.com/3,c,2026-11-01T00:00:00Z,lost\n"
    )
    records = list(web_reviews.read_reviews(io.BytesIO(content), web_reviews.FORMATS["social"]))
    assert [(n, r if isinstance(r, str) else r.text) for n, r in records] == [
        (2, "fine,\nover two lines"),
        (4, "unreadable CSV: unexpected end of data (a quote left open?)"),
    ]


def test_cli_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tp.csv"
    path.write_bytes(b"Review ID,Review Stars\n1,5\n")
    assert cli.main(["import-feedback", str(path), "--format", "yelp"]) == 2
    assert "unknown format 'yelp'" in capsys.readouterr().err


async def test_import_api(client: Client, session_factory: Sessions) -> None:
    token = await create_api_token(session_factory, StaffRole.cx_manager)
    body = (DATA / "google_reviews.json").read_bytes()
    response = await client.post("/api/feedback?format=google", data=body, headers=bearer(token))
    assert response.status == 200
    answer = await response.json()
    assert answer["format"] == "google"
    assert (answer["imported"], answer["unattributed"], answer["escalations"]) == (3, 3, 1)
    assert answer["errors"] == [
        {"review": 3, "message": "'starRating' must be ONE to FIVE, not 'STAR_RATING_UNSPECIFIED'"}
    ]
    again = await (
        await client.post("/api/feedback?format=google", data=body, headers=bearer(token))
    ).json()
    assert (again["imported"], again["duplicates"]) == (0, 3)
    bad = await client.post("/api/feedback?format=yelp", data=body, headers=bearer(token))
    assert bad.status == 422
    assert (await bad.json())["error"]["code"] == "unknown_format"
    missing = await client.post(
        "/api/feedback?format=social", data=b"platform,url,author,text\n", headers=bearer(token)
    )
    assert missing.status == 422
    assert (await missing.json())["error"]["message"] == (
        "missing column 'time' for format social (needs: platform, url, author, time, text)"
    )
    agent = await create_api_token(session_factory, StaffRole.agent, "agent")
    forbidden = await client.post("/api/feedback?format=google", data=body, headers=bearer(agent))
    assert forbidden.status == 403


async def test_reviewer_export_and_erasure_by_email_or_handle(session_factory: Sessions) -> None:
    await run_import(session_factory, "social", (DATA / "social.csv").read_bytes())
    async with session_factory() as session, session.begin():
        by_email = await reviewer_privacy.export_reviewers(
            session, "Tom.Becker@example.com", actor="test"
        )
        by_handle = await reviewer_privacy.export_reviewers(session, "@angry_dan", actor="test")
    assert [r["handle"] for r in by_email["reviewers"]] == ["@tom_b"]
    assert [f["text"] for f in by_email["reviewers"][0]["feedback"]] == [
        "Waiting for my order, hope it comes soon"
    ]
    angry = by_handle["reviewers"][0]
    assert [f["source_url"] for f in angry["feedback"]] == ["https://x.com/someone/status/1"]
    assert len(angry["escalations"]) == 1
    async with session_factory() as session, session.begin():
        counts = await reviewer_privacy.erase_reviewers(session, "@angry_dan", actor="test")
    assert counts == {"feedback_texts": 1, "escalations": 1, "profile": 1}
    async with session_factory() as session, session.begin():
        again = await reviewer_privacy.erase_reviewers(session, f"erased-{angry['id']}", actor="t")
        rows = (
            await session.execute(
                select(Feedback.text, Feedback.source_url, Feedback.sentiment).where(
                    Feedback.reviewer_id == angry["id"]
                )
            )
        ).all()
        summary_left = await session.scalar(select(Escalation.summary))
        audit = await session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == "erase_reviewer")
        )
        with pytest.raises(NotFound):
            await reviewer_privacy.find_reviewers(session, "@angry_dan")
    assert again == {"feedback_texts": 0, "escalations": 0, "profile": 0}
    assert [(t, u) for t, u, _ in rows] == [(None, None)]
    assert rows[0][2] is not None and rows[0][2] < -0.5  # the metric stays
    assert (summary_left, audit) == (None, 1)


async def test_share_of_voice_per_channel_over_time(
    session_factory: Sessions, client: Client
) -> None:
    await shop(session_factory)
    await run_import(session_factory, "trustpilot", (DATA / "trustpilot.csv").read_bytes())
    await run_import(session_factory, "social", (DATA / "social.csv").read_bytes())
    async with session_factory() as session:
        channels, points = await share_of_voice.share_of_voice(session, NOVEMBER, "week")
    assert channels == ["review_site", "social"]
    # Social posts on 10-12 November (week of Monday 9th), Trustpilot on 20-22 (16th).
    assert [p.as_json(channels) for p in points] == [
        {
            "start": "2026-11-09",
            "total": 3,
            "channels": {
                "review_site": {"volume": 0, "share_percent": 0.0},
                "social": {"volume": 3, "share_percent": 100.0},
            },
        },
        {
            "start": "2026-11-16",
            "total": 6,
            "channels": {
                "review_site": {"volume": 6, "share_percent": 100.0},
                "social": {"volume": 0, "share_percent": 0.0},
            },
        },
    ]
    token = await create_api_token(session_factory, StaffRole.cx_manager)
    response = await client.get(
        "/api/metrics/share-of-voice?from=2026-11-01&to=2026-11-30&tz=UTC&bucket=month",
        headers=bearer(token),
    )
    assert response.status == 200
    body = await response.json()
    assert body["points"] == [
        {
            "start": "2026-11-01",
            "total": 9,
            "channels": {
                "review_site": {"volume": 6, "share_percent": 66.7},
                "social": {"volume": 3, "share_percent": 33.3},
            },
        },
    ]


async def test_reviewer_privacy_api(client: Client, session_factory: Sessions) -> None:
    await run_import(session_factory, "social", (DATA / "social.csv").read_bytes())
    admin = await create_api_token(session_factory, StaffRole.admin, "admin")
    manager = await create_api_token(session_factory, StaffRole.cx_manager, "cx")
    url = "/api/reviewers/tom.becker%40example.com"
    assert (await client.get(f"{url}/export", headers=bearer(manager))).status == 403
    exported = await client.get(f"{url}/export", headers=bearer(admin))
    assert exported.status == 200
    assert [r["handle"] for r in (await exported.json())["reviewers"]] == ["@tom_b"]
    erased = await client.post(f"{url}/erase", headers=bearer(admin))
    assert (await erased.json()) == {
        "counts": {"feedback_texts": 1, "escalations": 0, "profile": 1}
    }
    gone = await client.get(f"{url}/export", headers=bearer(admin))
    assert gone.status == 404


async def test_batches_in_flight_share_new_reviewers(
    session_factory: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiny batches: on PostgreSQL one is written while the next is checked and analysed
    (in the worker process), and they meet the same new reviewers; a review repeated later
    in the file waits for the earlier one to be written."""
    monkeypatch.setattr(web_reviews, "BATCH", 2)
    lines = ["platform,url,author,time,text"]
    for i in range(9):
        lines.append(f"x,https://x.com/s/{i},@author{i % 3},2026-11-0{i + 1}T10:00:00Z,post {i}")
    lines.append("x,https://x.com/s/4,@author1,2026-11-05T10:00:00Z,post 4 edited")
    report, _ = await run_import(session_factory, "social", "\n".join(lines).encode())
    assert report.as_json() == {
        "imported": 9,
        "updated": 1,
        "duplicates": 0,
        "unattributed": 9,
        "escalations": 0,
        "errors": [],
    }
    async with session_factory() as session:
        handles = sorted((await session.scalars(select(Reviewer.handle))).all())
        texts = sorted((await session.scalars(select(Feedback.text))).all(), key=str)
        daily = await metrics.metric_counts(session, NOVEMBER)
    assert handles == ["@author0", "@author1", "@author2"]
    assert texts == sorted([f"post {i}" for i in range(9) if i != 4] + ["post 4 edited"])
    assert daily.volume == 9  # the rollups counted each row once
