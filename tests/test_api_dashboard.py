"""Dashboard API over HTTP: roles, parameter validation, paging, export (CSV/JSON), OpenAPI."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher

from bot.domain import staff
from bot.domain.enums import StaffRole
from tests.dashboard_data import COMMENT_WITH_FORMULA, seed
from tests.staff_helpers import bearer, create_api_token, create_staff, sign_in

Client = TestClient[Any, Any]
MARCH = "from=2026-03-01&to=2026-03-31"


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        staff, "password_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture
async def cx(client: Client, session_factory: Any) -> Client:
    await create_staff(session_factory)
    await seed(session_factory)
    await sign_in(client, StaffRole.cx_manager)
    return client


async def _json(response: Any, status: int = 200) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


async def test_metrics_with_previous_period_trend_and_breakdown(cx: Client) -> None:
    body = await _json(await cx.get(f"/api/metrics?{MARCH}&bucket=month&group_by=product"))
    assert body["range"] == {"from": "2026-03-01", "to": "2026-03-31", "tz": "UTC"}
    assert body["previous_range"] == {"from": "2026-01-29", "to": "2026-02-28", "tz": "UTC"}
    assert body["current"]["csat"]["percent"] == 50.0
    assert body["current"]["nps"] == {
        "score": 16.7,
        "responses": 6,
        "promoters": 3,
        "passives": 1,
        "detractors": 2,
        "interval": [-55.1, 88.5],
        "too_few": True,
    }
    assert body["previous"]["volume"] == 2
    assert [(p["start"], p["volume"]) for p in body["trend"]] == [("2026-03-01", 15)]
    groups = body["breakdown"]["groups"]
    assert [(g["key"], g["volume"], g["previous"]["volume"]) for g in groups] == [
        ("SKU-A", 6, 0),
        ("SKU-B", 3, 0),
    ]


async def test_sample_sizes_intervals_too_few_and_partial_buckets(cx: Client) -> None:
    # DASHBOARD_MIN_ANSWERS (10 by default): March has 4 CSAT, 6 NPS and 2 CES answers.
    body = await _json(await cx.get(f"/api/metrics?{MARCH}&bucket=week&group_by=stage"))
    assert body["min_answers"] == 10
    current = body["current"]
    assert current["csat"] == {
        "percent": 50.0,
        "responses": 4,
        "satisfied": 2,
        "interval": [15.0, 85.0],
        "too_few": True,
    }
    assert (current["nps"]["interval"], current["nps"]["too_few"]) == ([-55.1, 88.5], True)
    assert current["ces"] == {"mean": 3.5, "responses": 2, "too_few": True}
    # Weeks start on Monday: the first (Feb 23rd) starts before March 1st, the last
    # (March 30th) ends after the 31st; March 2026 is long over on the server's clock.
    weeks = [(p["start"], p["partial"], p["volume"]) for p in body["trend"]]
    assert weeks[0] == ("2026-02-23", "starts_before_range", 1)
    assert weeks[-1] == ("2026-03-30", "ends_after_range", 1)
    assert [p["partial"] for p in body["trend"][1:-1]] == [None, None, None, None]
    support = next(g for g in body["breakdown"]["groups"] if g["key"] == "support")
    assert (support["csat"]["responses"], support["csat"]["too_few"]) == (2, True)
    assert support["previous"]["csat"]["too_few"] is True
    journey_body = await _json(await cx.get(f"/api/journey?{MARCH}"))
    assert journey_body["min_answers"] == 10
    use = journey_body["stages"][3]
    assert (use["stage"], use["nps"]["responses"], use["nps"]["too_few"]) == ("use", 2, True)


async def test_labels_name_every_key(cx: Client) -> None:
    body = await _json(await cx.get("/api/labels"))
    assert body["groups"]["channel"]["website_chat"] == "Website chat"
    assert body["groups"]["trigger"]["order_delivered"] == "After delivery"
    assert body["in_chat_prefix"] == "in_chat:"
    assert body["values"]["stage"] == ["discovery", "research", "purchase", "use", "support"]
    assert body["values"]["theme"][:2] == ["delivery", "product_quality"]
    assert set(body["values"]) == {"stage", "channel", "kind", "theme"}
    assert body["in_chat"].format(flow=body["groups"]["flow"]["order_status"]) == (
        "In the chat, after an order status question"
    )


def test_min_answers_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.config import Settings

    assert Settings.from_env().dashboard_min_answers == 10
    monkeypatch.setenv("DASHBOARD_MIN_ANSWERS", "30")
    assert Settings.from_env().dashboard_min_answers == 30


async def test_journey_uses_the_configured_thresholds(cx: Client) -> None:
    body = await _json(await cx.get(f"/api/journey?{MARCH}"))
    assert body["thresholds"] == {
        "csat_below": 60.0,
        "nps_below": 0.0,
        "dropoff_above": 70.0,
        # PITFALL_MIN_RESPONSES (5), raised to DASHBOARD_MIN_ANSWERS (10): no pitfall on
        # what the screen calls "too few".
        "min_responses": 10,
    }
    assert [s["customers"] for s in body["stages"]] == [3, 2, 2, 2, 1]
    assert body["pitfalls"] == []  # no cell has 10 answers in this small data set


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-02-30", "'from'"),
        ("tz=Nowhere/City", "'tz'"),
        ("bucket=year", "'bucket'"),
        ("group_by=colour", "'group_by'"),
        ("stage=use,nope", "'stage'"),
        ("colour=red", "'colour'"),
        ("from=2026-03-01&from=2026-03-02", "'from'"),
    ],
)
async def test_bad_metrics_parameters_are_422_naming_them(
    cx: Client, query: str, field: str
) -> None:
    body = await _json(await cx.get(f"/api/metrics?{query}"), 422)
    assert body["error"]["code"] == "invalid_input"
    assert field in body["error"]["message"]


async def test_feedback_rows_filters_paging_sort_and_links(cx: Client) -> None:
    body = await _json(await cx.get(f"/api/feedback?{MARCH}&per_page=4&page=2&sort=created_at"))
    assert (body["total"], body["pages"], body["page"], len(body["items"])) == (15, 4, 2, 4)
    assert [i["created_at"][:10] for i in body["items"]] == [
        "2026-03-12",
        "2026-03-13",
        "2026-03-13",
        "2026-03-14",
    ]

    body = await _json(await cx.get(f"/api/feedback?{MARCH}&q=LATE+PARCEL&sentiment=negative"))
    (row,) = body["items"]
    assert row["text"] == COMMENT_WITH_FORMULA and row["themes"] == ["delivery"]
    assert row["order_number"] == "A2" and row["customer"]["external_id"] == "C2"
    assert row["links"] == {
        "customer": f"/dashboard/explorer?customer={row['customer']['id']}",
        "conversation": "/dashboard/transcript?conversation=conv-1",
    }
    transcript = await _json(await cx.get("/api/transcripts/conv-1"))
    assert [m["text"] for m in transcript["messages"]] == [
        "My parcel is late",
        "Sorry to hear that!",
    ]
    await _json(await cx.get("/api/transcripts/nope"), 404)

    body = await _json(await cx.get(f"/api/feedback?{MARCH}&kind=nps&score_min=9&sort=-score"))
    assert [i["score"] for i in body["items"]] == [10, 9, 9]
    body = await _json(await cx.get(f"/api/feedback?{MARCH}&product=SKU-B&channel=email"))
    assert [(i["kind"], i["score"]) for i in body["items"]] == [("csat", 4)]
    body = await _json(await cx.get(f"/api/feedback?{MARCH}&trigger=support_resolved"))
    assert [i["trigger"] for i in body["items"]] == ["support_resolved"]
    body = await _json(await cx.get(f"/api/feedback?{MARCH}&acquisition=unknown"))
    assert {i["customer"]["external_id"] for i in body["items"]} == {"C3"}

    for query, field in [
        ("sort=name", "'sort'"),
        ("per_page=201", "'per_page'"),
        ("page=0", "'page'"),
    ]:
        error = await _json(await cx.get(f"/api/feedback?{query}"), 422)
        assert field in error["error"]["message"]


async def test_csv_export_quotes_and_neutralises_formulas(cx: Client) -> None:
    response = await cx.get(f"/api/export?{MARCH}&format=csv")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    raw = await response.read()
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    header, data = rows[0], rows[1:]
    assert header[:3] == ["id", "created_at", "stage"] and len(data) == 15
    records = [dict(zip(header, row, strict=True)) for row in data]
    complaint = next(r for r in records if r["kind"] == "complaint")
    # Commas, quotes, a newline and an emoji survive; the formula is defused.
    assert complaint["text"] == "'" + COMMENT_WITH_FORMULA
    assert complaint["sentiment"] == "-0.5"  # numbers are ours: not touched
    assert complaint["customer_name"] == "'+Bob"
    ann = next(r for r in records if r["customer_external_id"] == "C1")
    assert ann["customer_name"] == 'Ann, "the" tester'
    assert b'"Ann, ""the"" tester"' in raw
    assert "📦" in raw.decode("utf-8")


async def test_json_export_is_an_array_of_rows(cx: Client) -> None:
    response = await cx.get(f"/api/export?{MARCH}&format=json&kind=nps")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    rows = json.loads(await response.read())
    assert [r["score"] for r in rows] == [10, 9, 9, 8, 6, 0]
    empty = await cx.get("/api/export?from=2020-01-01&to=2020-01-02&format=json")
    assert json.loads(await empty.read()) == []
    await _json(await cx.get("/api/export?format=xlsx"), 422)


async def test_agents_cannot_use_the_dashboard_api(client: Client, session_factory: Any) -> None:
    await create_staff(session_factory)
    await sign_in(client, StaffRole.agent)
    for path in (
        "/api/metrics",
        "/api/journey",
        "/api/feedback",
        "/api/export",
        "/api/transcripts/x",
    ):
        body = await _json(await client.get(path), 403)
        assert body["error"]["code"] == "forbidden"
    agent_token = await create_api_token(session_factory, StaffRole.agent)
    client.session.cookie_jar.clear()
    await _json(await client.get("/api/export", headers=bearer(agent_token)), 403)
    await _json(await client.get("/api/metrics"), 401)


async def test_admin_token_can_read_metrics_and_export(
    client: Client, session_factory: Any
) -> None:
    await seed(session_factory)
    token = await create_api_token(session_factory, StaffRole.admin)
    body = await _json(await client.get(f"/api/metrics?{MARCH}", headers=bearer(token)))
    assert body["current"]["volume"] == 15
    response = await client.get(f"/api/export?{MARCH}", headers=bearer(token))
    assert response.status == 200 and (await response.read()).count(b"\r\n") >= 16


async def test_openapi_documents_the_dashboard_endpoints(client: Client) -> None:
    document = await _json(await client.get("/api/openapi.json"))
    for path in ("/api/metrics", "/api/journey", "/api/feedback", "/api/export"):
        assert "get" in document["paths"][path]
    names = {p["name"] for p in document["paths"]["/api/feedback"]["get"]["parameters"]}
    assert {
        "from",
        "to",
        "tz",
        "stage",
        "theme",
        "product",
        "q",
        "page",
        "per_page",
        "sort",
    } <= names
    assert "Metrics" in document["components"]["schemas"]


async def test_no_pitfall_on_answers_the_screen_calls_too_few(
    client: Client, session_factory: Any
) -> None:
    """Tester 5: one day, 6 CSAT answers at stage use (50 %) read "too few" (fewer than
    DASHBOARD_MIN_ANSWERS, 10) yet made a "Use: CSAT 50 < 60" pitfall (PITFALL_MIN_RESPONSES
    5) and a "what to fix first" row; 3 customers reached made a 100 % drop-off pitfall."""
    from bot.domain.enums import Channel, FeedbackKind, FeedbackSource, LifecycleKind, Stage
    from bot.storage.models import Customer, Feedback, Lifecycle
    from tests.dashboard_data import at

    await create_staff(session_factory)
    async with session_factory() as db, db.begin():
        customers = [Customer(external_id=f"D{n}") for n in range(3)]
        db.add_all(customers)
        await db.flush()
        lifecycles = [
            Lifecycle(
                customer_id=c.id,
                kind=LifecycleKind.one_time,
                stage=Stage.purchase,
                opened_at=at("2026-12-07T09:00:00"),
            )
            for c in customers
        ]
        db.add_all(lifecycles)
        await db.flush()
        for n, score in enumerate([5, 5, 5, 1, 1, 1]):
            lc = lifecycles[n % 3]
            db.add(
                Feedback(
                    idempotency_key=f"few{n}",
                    customer_id=lc.customer_id,
                    lifecycle_id=lc.id,
                    stage=Stage.use,
                    channel=Channel.website_chat,
                    source=FeedbackSource.chat_survey,
                    kind=FeedbackKind.csat,
                    score=score,
                    created_at=at(f"2026-12-07T1{n}:00:00"),
                )
            )
    await sign_in(client, StaffRole.cx_manager)
    day = "from=2026-12-07&to=2026-12-07"

    body = await _json(await client.get(f"/api/journey?{day}"))
    use = body["stages"][3]
    assert (use["csat"]["percent"], use["csat"]["responses"], use["csat"]["too_few"]) == (
        50.0,
        6,
        True,
    )
    assert body["stages"][2]["customers"] == 3
    assert body["pitfalls"] == []
    assert body["thresholds"]["min_responses"] == 10
    fix = await _json(await client.get(f"/api/journey/fix-first?{day}"))
    assert fix["items"] == []
