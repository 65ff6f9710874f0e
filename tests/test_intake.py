"""Feedback from other channels: POST /api/feedback, the CSV import, the lifecycle at that
time, de-duplication, and the closed loop (detractor → follow-up escalation with a due time)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import cli
from bot.domain import handoff, intake, shop_events, staff
from bot.domain.enums import StaffRole, Stage
from bot.domain.errors import DomainError
from bot.storage.models import Escalation, Feedback, Lifecycle, StaffUser, SurveyDispatch, utcnow
from tests.staff_helpers import bearer, create_api_token, create_staff
from tests.test_shop_events import T0, order_event

Client = TestClient[Any, Any]
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        staff, "password_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


def iso(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


async def two_orders(sessions: Sessions) -> tuple[int, int]:
    """Customer C9001 (kim@example.com): order A20001 returned at +100 h (lifecycle closed),
    order A20002 placed at +200 h (open). Returns both lifecycle ids."""
    for event_id, kind, hours, number in (
        ("e1", "placed", 0, "A20001"),
        ("e2", "delivered", 48, "A20001"),
        ("e3", "returned", 100, "A20001"),
        ("e4", "placed", 200, "A20002"),
    ):
        await shop_events.receive(
            sessions, shop_events.parse_event(order_event(event_id, kind, hours, number))
        )
    async with sessions() as session:
        ids = (await session.scalars(select(Lifecycle.id).order_by(Lifecycle.id))).all()
    return ids[0], ids[1]


def item(**fields: Any) -> intake.FeedbackItem:
    base = {
        "channel": "call_center",
        "customer_external_id": "C9001",
        "occurred_at": iso(50),
        "kind": "comment",
        "text": "Asked about the invoice.",
    }
    return intake.parse_item({**base, **fields})


async def record(sessions: Sessions, feedback_item: intake.FeedbackItem) -> intake.IntakeResult:
    async with sessions() as session, session.begin():
        return await intake.record_item(session, feedback_item, due_hours=48)


async def test_feedback_lands_on_the_lifecycle_current_at_that_time(
    session_factory: Sessions,
) -> None:
    first, second = await two_orders(session_factory)
    during_first = await record(session_factory, item(occurred_at=iso(50)))
    after_first_closed = await record(
        session_factory, item(occurred_at=iso(150), text="Second note")
    )
    during_second = await record(session_factory, item(occurred_at=iso(300), text="Third note"))
    before_anything = await record(session_factory, item(occurred_at=iso(-240), text="Old note"))
    by_email = await record(
        session_factory,
        item(
            customer_external_id="",
            customer_email="KIM@example.com",
            occurred_at=iso(60),
            text="Fourth",
        ),
    )
    assert during_first.feedback[0].lifecycle_id == first
    assert during_first.feedback[0].stage is Stage.support  # that lifecycle's stage (now)
    assert during_first.feedback[0].created_at == T0 + timedelta(hours=50)
    assert during_first.feedback[0].source.value == "imported"
    assert during_first.feedback[0].channel.value == "call_center"
    # Between the two journeys no lifecycle was current: the customer's current one.
    assert after_first_closed.feedback[0].lifecycle_id == second
    assert during_second.feedback[0].lifecycle_id == second
    assert before_anything.feedback[0].lifecycle_id == second
    assert by_email.feedback[0].lifecycle_id == first


async def test_the_same_item_is_recorded_once(session_factory: Sessions) -> None:
    await two_orders(session_factory)
    assert (await record(session_factory, item(kind="csat", score=4, text="ok"))).created is True
    again = await record(session_factory, item(kind="csat", score=4, text="ok"))
    assert again.created is False
    with_id = await record(session_factory, item(external_id="ticket-7", text="A"))
    changed_text_same_id = await record(session_factory, item(external_id="ticket-7", text="B"))
    assert (with_id.created, changed_text_same_id.created) == (True, False)
    async with session_factory() as session:
        rows = (await session.scalars(select(Feedback).order_by(Feedback.id))).all()
        assert [(f.kind.value, f.score, f.text) for f in rows] == [
            ("csat", 4, None),
            ("comment", None, "ok"),
            ("comment", None, "A"),
        ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"channel": "fax"}, "'channel' must be one of call_center, email, social, storefront"),
        ({"kind": "", "score": 3}, "'kind' is required with a score"),
        ({"kind": "nps", "score": None}, "'score' is required for nps"),
        ({"kind": "csat", "score": 9}, "csat score must be between 1 and 5"),
        ({"kind": "complaint", "text": ""}, "'text' is required for complaint"),
        ({"occurred_at": "yesterday"}, "'occurred_at' must be an ISO 8601"),
        ({"customer_external_id": "C404"}, "No customer with external id 'C404'"),
    ],
)
async def test_invalid_items_are_refused_with_the_field(
    session_factory: Sessions, fields: dict[str, Any], message: str
) -> None:
    await two_orders(session_factory)
    with pytest.raises(DomainError) as error:
        await record(session_factory, item(**fields))
    assert error.value.message.startswith(message), error.value.message


async def test_a_detractor_opens_a_follow_up_that_is_queued_and_resolved_with_a_survey(
    session_factory: Sessions,
) -> None:
    first, _second = await two_orders(session_factory)
    before = utcnow()
    result = await record(
        session_factory, item(kind="csat", score=1, text="Nobody called me back about my return.")
    )
    escalation = result.escalation
    assert escalation is not None
    assert (escalation.reason.value, escalation.priority, escalation.conversation_id) == (
        "negative_feedback",
        3,
        None,
    )
    assert escalation.feedback_id == result.feedback[0].id
    assert escalation.due_at is not None
    assert before + timedelta(hours=48) <= escalation.due_at <= utcnow() + timedelta(hours=48)
    assert escalation.summary == "call center: csat 1 — Nobody called me back about my return."
    # Not detractors: a good score, NPS 5 without a complaint, a mild complaint.
    for fields in (
        {"kind": "csat", "score": 4},
        {"kind": "nps", "score": 5, "text": None},
        {"kind": "complaint", "text": "The box was a bit small."},
    ):
        assert (await record(session_factory, item(**fields))).escalation is None
    assert (
        await record(session_factory, item(kind="nps", score=3, text="Terrible, awful service."))
    ).escalation

    await create_staff(session_factory)
    async with session_factory() as session, session.begin():
        agent = await session.scalar(select(StaffUser).where(StaffUser.role == StaffRole.agent))
        assert agent is not None
        queue = await handoff.queue(session, agent)
        follow_up = next(i for i in queue if i["escalation_id"] == escalation.id)
        assert follow_up["conversation_id"] is None
        assert follow_up["last_message"] is None
        assert follow_up["customer"]["external_id"] == "C9001"
        assert follow_up["due_at"] == escalation.due_at.isoformat()
        assert follow_up["summary"].startswith("call center: csat 1")
        await handoff.claim(session, escalation.id, agent)
        handback = await handoff.resolve(session, escalation.id, agent)
        assert handback.conversation_id == ""
    async with session_factory() as session:
        dispatches = (await session.scalars(select(SurveyDispatch))).all()
        assert [
            (d.trigger, d.lifecycle_id, d.sent_at)
            for d in dispatches
            if d.trigger == "support_resolved"
        ] == [("support_resolved", first, None)]


# ---- HTTP ----------------------------------------------------------------------------------


async def test_post_feedback_api(client: Client, session_factory: Sessions) -> None:
    await two_orders(session_factory)
    token = await create_api_token(session_factory, StaffRole.cx_manager)
    body = {
        "channel": "email",
        "customer": {"external_id": "C9001"},
        "occurred_at": iso(50),
        "kind": "ces",
        "score": 7,
        "text": "Took five emails to get an answer.",
        "external_id": "mail-1",
    }
    created = await client.post("/api/feedback", json=body, headers=bearer(token))
    assert created.status == 201, await created.text()
    answer = await created.json()
    assert answer["duplicate"] is False
    assert [(f["kind"], f["score"], f["channel"], f["stage"]) for f in answer["feedback"]] == [
        ("ces", 7, "email", "support"),
        ("comment", None, "email", "support"),
    ]
    assert answer["escalation"]["reason"] == "negative_feedback"
    assert answer["escalation"]["due_at"] is not None

    again = await client.post("/api/feedback", json=body, headers=bearer(token))
    assert again.status == 200
    assert (await again.json())["duplicate"] is True
    async with session_factory() as session:
        assert len((await session.scalars(select(Escalation))).all()) == 1

    bad = await client.post("/api/feedback", json={**body, "customer": {}}, headers=bearer(token))
    assert bad.status == 422
    assert (await bad.json())["error"]["message"].startswith(
        "'customer.external_id' or 'customer.email'"
    )
    agent = await create_api_token(session_factory, StaffRole.agent, name="agent")
    forbidden = await client.post("/api/feedback", json=body, headers=bearer(agent))
    assert forbidden.status == 403
    assert (await client.post("/api/feedback", json=body)).status == 401


# ---- CSV -----------------------------------------------------------------------------------

CSV = """channel,customer_external_id,customer_email,occurred_at,kind,score,text,external_id
storefront,C9001,,{t1},praise,,"Lovely mugs, fast delivery",rev-1
fax,C9001,,{t1},comment,,hello,
social,,kim@example.com,{t2},complaint,,"Worst, most useless shop ever. Horrible!",post-9
call_center,C9001,,{t2},csat,11,,
email,C404,,{t2},comment,,who am I,
call_center,C9001,,{t2},nps,9,"multi-line
note",
storefront,C9001,,{t1},praise,,"Lovely mugs, fast delivery",rev-1
"""


async def test_csv_import_keeps_valid_rows_reports_bad_lines_and_never_imports_twice(
    session_factory: Sessions, tmp_path: Path
) -> None:
    await two_orders(session_factory)
    path = tmp_path / "feedback.csv"
    path.write_text(CSV.format(t1=iso(50), t2=iso(300)))
    report = await intake.import_csv(session_factory, intake.read_csv_file(path), due_hours=48)
    assert (report.imported, report.duplicates, report.escalations) == (3, 1, 1)
    assert report.errors == [
        (3, "'channel' must be one of call_center, email, social, storefront"),
        (5, "csat score must be between 1 and 5"),
        (6, "No customer with external id 'C404' is known."),
    ]
    again = await intake.import_csv(session_factory, path.read_text(), due_hours=48)
    assert (again.imported, again.duplicates, len(again.errors)) == (0, 4, 3)
    async with session_factory() as session:
        rows = (await session.scalars(select(Feedback).order_by(Feedback.id))).all()
        assert [(f.channel.value, f.kind.value, f.score) for f in rows] == [
            ("storefront", "praise", None),
            ("social", "complaint", None),
            ("call_center", "nps", 9),
            ("call_center", "comment", None),
        ]
        escalations = (await session.scalars(select(Escalation))).all()
        assert [e.feedback_id for e in escalations] == [rows[1].id]


def test_import_feedback_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("channel,when\nemail,now\n")
    assert cli.main(["import-feedback", str(path)]) == 1
    assert (
        "line 1: missing column(s) occurred_at; unknown column(s) when" in capsys.readouterr().err
    )


def test_header_only_csv_imports_nothing() -> None:
    rows, problems = intake.read_csv_rows(",".join(intake.CSV_COLUMNS) + "\n")
    assert (rows, problems) == ([], [])


def test_future_times_are_refused() -> None:
    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    with pytest.raises(DomainError, match="lies in the future"):
        item(occurred_at=future)
