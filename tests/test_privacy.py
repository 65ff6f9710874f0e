"""Customers' data rights: export, erase (no trace left in any table; metrics kept),
retention purge, the admin API and the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from sqlalchemy import String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.types import JSON

from bot.config import PROJECT_ROOT, Settings
from bot.domain import conversations, outbox, privacy, staff
from bot.domain.enums import (
    Channel,
    EscalationReason,
    FeedbackKind,
    FeedbackSource,
    LifecycleKind,
    MessageSender,
    OrderStatus,
    ShopEventStatus,
    StaffRole,
    Stage,
    SubscriptionStatus,
)
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.identity import CustomerClaims, issue_token
from bot.storage.models import (
    AuditLog,
    Base,
    Conversation,
    Customer,
    Escalation,
    Feedback,
    IdentityTokenUse,
    Lifecycle,
    Message,
    Order,
    OrderItem,
    ShopEvent,
    StaffNote,
    StaffUser,
    Subscription,
    SurveyDispatch,
    WebhookOutbox,
    utcnow,
)
from bot.web.app import create_app
from tests.staff_helpers import bearer, create_api_token, create_staff, sign_in

Sessions = async_sessionmaker[AsyncSession]

EMAIL = "Zelda.Quarry@example.org"
NAME = "Zelda Quarry"
EXTERNAL_ID = "SHOP-CUST-98765"
ADDRESS = "17 Hidden Lane, 04109 Leipzig"
TRACKING = "TRK-5550001"
CUSTOMER_TEXTS = (
    f"hi, I am {NAME}, my email is {EMAIL}",
    "my parcel A77001 never arrived, pineapple-umbrella",
)
BOT_TEXT = f"Thanks {NAME}! I found order A77001 going to {ADDRESS}."
AGENT_TEXT = "Hello Zelda, I'm sending a replacement today, walrus-kettle."
SYSTEM_TEXT = f"Thanks! Our team will reply to {EMAIL}."
NOTE_TEXT = "Zelda called twice, very upset, gooseberry-ladder"
COMMENT = "The courier threw my box over the fence, marmalade-sextant"
SUMMARY = f"{NAME} reports a lost parcel; quote: pineapple-umbrella"
OLD_ADDRESS = "3 Former Road, 01067 Dresden"
# Every string that identifies Zelda or that she (or anyone, about her) wrote.
SECRETS = (
    EMAIL,
    NAME,
    "Zelda",
    "Quarry",
    EXTERNAL_ID,
    ADDRESS,
    TRACKING,
    *CUSTOMER_TEXTS,
    BOT_TEXT,
    AGENT_TEXT,
    SYSTEM_TEXT,
    NOTE_TEXT,
    COMMENT,
    SUMMARY,
    OLD_ADDRESS,
    "pineapple-umbrella",
    "walrus-kettle",
    "gooseberry-ladder",
    "marmalade-sextant",
)
OTHER_EMAIL = "otto.other@example.com"
OTHER_TEXT = "Otto's message stays, kumquat-anchor"


@dataclass
class Seeded:
    customer_id: int
    other_id: int
    conversation_id: str
    other_conversation_id: str


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        staff, "password_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


async def _seed(sessions: Sessions) -> Seeded:
    """Zelda with every kind of data; Otto, whose data must stay untouched."""
    now = utcnow()
    async with sessions() as db, db.begin():
        agent = await staff.create_user(db, "agent9@example.com", "Sam", StaffRole.agent, "x" * 12)
        zelda = Customer(external_id=EXTERNAL_ID, email=EMAIL, name=NAME)
        otto = Customer(external_id="SHOP-CUST-1", email=OTHER_EMAIL, name="Otto Other")
        db.add_all([zelda, otto])
        await db.flush()
        sub = Subscription(
            customer_id=zelda.id,
            plan="Coffee Box",
            price=Decimal("24.00"),
            status=SubscriptionStatus.active,
            started_at=now - timedelta(days=40),
            current_period_start=now - timedelta(days=10),
            current_period_end=now + timedelta(days=20),
        )
        order = Order(
            number="A77001",
            customer_id=zelda.id,
            status=OrderStatus.shipped,
            total=Decimal("59.90"),
            shipping_address=ADDRESS,
            carrier="DHL",
            tracking_number=TRACKING,
            placed_at=now - timedelta(days=5),
            items=[OrderItem(sku="KIT-1", name="Mug", quantity=2, unit_price=Decimal("29.95"))],
        )
        db.add_all([sub, order])
        await db.flush()
        lifecycle = Lifecycle(
            customer_id=zelda.id,
            kind=LifecycleKind.one_time,
            stage=Stage.support,
            order_id=order.id,
        )
        chat = Conversation(
            id="conv-z1",
            customer_id=zelda.id,
            access_token_hash="a" * 64,
            identified_by="token",
            order_id=order.id,
        )
        other_chat = Conversation(id="conv-o1", customer_id=otto.id, access_token_hash="b" * 64)
        db.add_all([lifecycle, chat, other_chat])
        await db.flush()
        texts = [
            (MessageSender.customer, CUSTOMER_TEXTS[0]),
            (MessageSender.bot, BOT_TEXT),
            (MessageSender.customer, CUSTOMER_TEXTS[1]),
            (MessageSender.system, SYSTEM_TEXT),
            (MessageSender.agent, AGENT_TEXT),
        ]
        for sender, text in texts:
            db.add(
                Message(
                    conversation_id=chat.id,
                    sender=sender,
                    text=text,
                    buttons=[{"title": NAME, "payload": EMAIL}]
                    if sender is MessageSender.bot
                    else None,
                    author="Sam" if sender is MessageSender.agent else None,
                )
            )
        db.add(
            Message(conversation_id=other_chat.id, sender=MessageSender.customer, text=OTHER_TEXT)
        )
        db.add(StaffNote(conversation_id=chat.id, staff_user_id=agent.id, text=NOTE_TEXT))
        dispatch = SurveyDispatch(
            customer_id=zelda.id,
            lifecycle_id=lifecycle.id,
            conversation_id=chat.id,
            trigger="delivered",
            survey_kind=FeedbackKind.csat,
            sent_at=now,
        )
        db.add(dispatch)
        await db.flush()
        feedback = [
            Feedback(
                idempotency_key=f"test:{kind.value}",
                customer_id=zelda.id,
                lifecycle_id=lifecycle.id,
                stage=Stage.support,
                channel=Channel.website_chat,
                source=FeedbackSource.chat_survey,
                kind=kind,
                score=score,
                text=text,
                sentiment=sentiment,
                themes=themes,
                conversation_id=chat.id,
                survey_dispatch_id=dispatch.id,
                order_id=order.id,
            )
            for kind, score, text, sentiment, themes in (
                (FeedbackKind.csat, 2, None, None, []),
                (FeedbackKind.complaint, None, COMMENT, -0.7, ["delivery"]),
            )
        ]
        db.add_all(feedback)
        await db.flush()
        escalation = Escalation(
            conversation_id=chat.id,
            customer_id=zelda.id,
            feedback_id=feedback[1].id,
            reason=EscalationReason.negative_feedback,
            priority=2,
            summary=SUMMARY,
            contact_email=EMAIL,
        )
        db.add(escalation)
        await db.flush()
        db.add(
            WebhookOutbox(
                event_type="feedback.detractor",
                escalation_id=escalation.id,
                payload=outbox.detractor_payload(escalation, feedback[1], zelda),
            )
        )
        db.add(
            ShopEvent(
                id="evt-1",
                type="order.shipped",
                occurred_at=now,
                status=ShopEventStatus.applied,
                result={"event_id": "evt-1", "customer": EXTERNAL_ID, "applied": True},
            )
        )
        # Accepted, not applied yet: the queued payload names her (bot/web/events_worker.py).
        db.add(
            ShopEvent(
                id="evt-2",
                type="order.delivered",
                occurred_at=now,
                customer_ref=EXTERNAL_ID,
                payload={
                    "id": "evt-2",
                    "type": "order.delivered",
                    "customer": {"external_id": EXTERNAL_ID, "email": EMAIL, "name": NAME},
                    "order": {"number": "A77001", "shipping_address": ADDRESS},
                },
            )
        )
        db.add(
            AuditLog(
                actor=f"customer:{zelda.id}",
                action="change_address",
                target_type="order",
                target_id="A77001",
                details={"via": "chat", "from": OLD_ADDRESS, "to": ADDRESS},
            )
        )
        # A single-use identity token she used (bot/domain/conversations.py).
        db.add(
            IdentityTokenUse(
                jti="jti-zelda-1",
                customer_external_id=EXTERNAL_ID,
                conversation_id=chat.id,
                expires_at=now + timedelta(hours=1),
            )
        )
        await db.flush()
        return Seeded(zelda.id, otto.id, chat.id, other_chat.id)


def _text_columns(table: Any) -> list[Any]:
    return [c for c in table.columns if isinstance(c.type, String | Text | JSON)]


async def _traces(sessions: Sessions, needles: tuple[str, ...]) -> list[str]:
    """Every (table.column, needle) where a needle still appears, scanning every text and
    JSON column of every table in the schema, so tables added later are covered too."""
    found = []
    async with sessions() as db:
        for table in Base.metadata.sorted_tables:
            columns = _text_columns(table)
            if not columns:
                continue
            for row in (await db.execute(select(*columns))).all():
                for column, value in zip(columns, row, strict=True):
                    haystack = (
                        json.dumps(value, ensure_ascii=False)
                        if isinstance(value, dict | list)
                        else str(value)
                    ).lower()
                    found += [
                        f"{table.name}.{column.name}: {needle!r}"
                        for needle in needles
                        if needle.lower() in haystack
                    ]
    return found


# ---- domain ------------------------------------------------------------------------------


async def test_export_contains_every_kind_of_data_and_is_audited(session_factory: Sessions) -> None:
    seeded = await _seed(session_factory)
    async with session_factory() as db, db.begin():
        document = await privacy.export_customer(db, EXTERNAL_ID, actor="staff:7")
    assert document["format"] == privacy.EXPORT_FORMAT
    assert document["customer"]["email"] == EMAIL and document["customer"]["name"] == NAME
    assert document["customer"]["external_id"] == EXTERNAL_ID
    [order] = document["orders"]
    assert order["shipping_address"] == ADDRESS and order["tracking_number"] == TRACKING
    assert [(i["sku"], i["quantity"], i["unit_price"]) for i in order["items"]] == [
        ("KIT-1", 2, "29.95")
    ]
    assert [s["plan"] for s in document["subscriptions"]] == ["Coffee Box"]
    assert [lc["stage"] for lc in document["lifecycles"]] == ["support"]
    [conversation] = document["conversations"]
    assert conversation["id"] == seeded.conversation_id
    assert "access_token_hash" not in conversation  # a credential's hash, not her data
    assert [m["text"] for m in conversation["messages"]] == [
        CUSTOMER_TEXTS[0],
        BOT_TEXT,
        CUSTOMER_TEXTS[1],
        SYSTEM_TEXT,
        AGENT_TEXT,
    ]
    assert [n["text"] for n in conversation["staff_notes"]] == [NOTE_TEXT]
    assert sorted((f["kind"], f["score"], f["text"]) for f in document["feedback"]) == [
        ("complaint", None, COMMENT),
        ("csat", 2, None),
    ]
    assert all("idempotency_key" not in f for f in document["feedback"])
    assert [d["trigger"] for d in document["survey_dispatches"]] == ["delivered"]
    [escalation] = document["escalations"]
    assert escalation["summary"] == SUMMARY and escalation["contact_email"] == EMAIL
    assert [a["action"] for a in document["actions"]] == ["change_address"]
    json.dumps(document)  # JSON-ready as it is
    assert OTHER_TEXT not in json.dumps(document) and OTHER_EMAIL not in json.dumps(document)
    async with session_factory() as db:
        audit = (
            await db.execute(select(AuditLog).where(AuditLog.action == "export_customer"))
        ).scalar_one()
    assert (audit.actor, audit.target_id) == ("staff:7", str(seeded.customer_id))


async def test_customer_is_found_by_shop_id_then_by_our_id(session_factory: Sessions) -> None:
    seeded = await _seed(session_factory)
    async with session_factory() as db:
        assert (await privacy.find_customer(db, EXTERNAL_ID)).id == seeded.customer_id
        assert (await privacy.find_customer(db, seeded.customer_id)).id == seeded.customer_id
        assert (await privacy.find_customer(db, str(seeded.other_id))).id == seeded.other_id
        with pytest.raises(NotFound):
            await privacy.find_customer(db, "NOBODY")
        with pytest.raises(NotFound):
            await privacy.find_customer(db, 99999)


async def test_erase_leaves_no_trace_in_any_table_and_keeps_the_metrics(
    session_factory: Sessions,
) -> None:
    seeded = await _seed(session_factory)
    assert len(await _traces(session_factory, SECRETS)) > 20  # the scan does find them
    async with session_factory() as db:
        feedback_before = [
            (f.kind, f.score, f.stage, f.channel, f.sentiment, f.themes, f.lifecycle_id)
            for f in (await db.execute(select(Feedback).order_by(Feedback.id))).scalars()
        ]

    async with session_factory() as db, db.begin():
        erasure = await privacy.erase_customer(db, EXTERNAL_ID, actor="staff:1")

    assert await _traces(session_factory, SECRETS) == []
    assert erasure.customer_id == seeded.customer_id and not erasure.already_erased
    assert erasure.conversation_ids == [seeded.conversation_id]
    assert erasure.counts == {
        "messages": 5,
        "staff_notes": 1,
        "feedback_texts": 1,
        "escalations": 1,
        "orders": 1,
        "conversation_tokens": 1,
        "audit_details": 1,
        "webhook_payloads": 1,
        "shop_events": 2,
        "identity_token_uses": 1,
        "profile": 1,
        "turn_understandings": 0,
        "photos": 0,
    }
    async with session_factory() as db:
        zelda = await db.get(Customer, seeded.customer_id)
        assert zelda is not None and zelda.email is None and zelda.name is None
        assert zelda.external_id == privacy.erased_external_id(EXTERNAL_ID)
        feedback_after = [
            (f.kind, f.score, f.stage, f.channel, f.sentiment, f.themes, f.lifecycle_id)
            for f in (await db.execute(select(Feedback).order_by(Feedback.id))).scalars()
        ]
        assert feedback_after == feedback_before  # scores, kinds, stages, themes kept
        messages = (
            await db.execute(
                select(Message.sender, Message.text)
                .where(Message.conversation_id == seeded.conversation_id)
                .order_by(Message.id)
            )
        ).all()
        assert [m.text for m in messages] == [privacy.ERASED_TEXT] * 5
        assert messages[0].sender is MessageSender.customer  # row kept for counts
        order = (await db.execute(select(Order))).scalar_one()
        assert (order.status, order.total, order.shipping_address) == (
            OrderStatus.shipped,
            Decimal("59.90"),
            privacy.ERASED_TEXT,
        )
        assert len((await db.execute(select(Lifecycle))).all()) == 1
        chat = await db.get(Conversation, seeded.conversation_id)
        assert chat is not None and chat.access_token_hash is None  # cannot be resumed
        audit = (
            await db.execute(select(AuditLog).where(AuditLog.action == "erase_customer"))
        ).scalar_one()
        assert (audit.actor, audit.target_type, audit.target_id) == (
            "staff:1",
            "customer",
            str(seeded.customer_id),
        )
        assert audit.details["messages"] == 5 and audit.details["already_erased"] is False
        # Otto is untouched.
        otto = await db.get(Customer, seeded.other_id)
        assert otto is not None and otto.email == OTHER_EMAIL
        other = await db.get(Conversation, seeded.other_conversation_id)
        assert other is not None and other.access_token_hash == "b" * 64
        assert (
            await db.execute(select(Message.text).where(Message.conversation_id == other.id))
        ).scalar_one() == OTHER_TEXT
        assert (await db.execute(select(StaffUser.display_name))).scalar_one() == "Sam"


async def test_erase_is_idempotent_and_catches_data_added_after_it(
    session_factory: Sessions,
) -> None:
    seeded = await _seed(session_factory)
    async with session_factory() as db, db.begin():
        await privacy.erase_customer(db, EXTERNAL_ID)
    async with session_factory() as db, db.begin():
        again = await privacy.erase_customer(db, EXTERNAL_ID)  # by the id she had
    assert again.already_erased and again.customer_id == seeded.customer_id
    assert set(again.counts.values()) == {0}
    assert again.conversation_ids == [seeded.conversation_id]  # trackers can be retried
    async with session_factory() as db:
        audits = (
            await db.execute(select(AuditLog).where(AuditLog.action == "erase_customer"))
        ).all()
    assert len(audits) == 1  # nothing changed, nothing new to record

    late = "a comment that arrived after the erasure, quince-compass"
    async with session_factory() as db, db.begin():
        db.add(
            Message(
                conversation_id=seeded.conversation_id, sender=MessageSender.customer, text=late
            )
        )
    async with session_factory() as db, db.begin():
        third = await privacy.erase_customer(db, seeded.customer_id)
    assert third.counts["messages"] == 1
    assert await _traces(session_factory, (late, *SECRETS)) == []


async def test_purge_transcripts_blanks_only_old_messages(session_factory: Sessions) -> None:
    seeded = await _seed(session_factory)
    old = utcnow() - timedelta(days=400)
    async with session_factory() as db, db.begin():
        db.add(
            Message(
                conversation_id=seeded.other_conversation_id,
                sender=MessageSender.customer,
                text="an old message, plum-lantern",
                created_at=old,
            )
        )
    async with session_factory() as db, db.begin():
        assert await privacy.purge_transcripts(db, 365, actor="cli") == 1
    async with session_factory() as db, db.begin():
        assert await privacy.purge_transcripts(db, 365) == 0  # nothing left: no second audit
        with pytest.raises(InvalidInput):
            await privacy.purge_transcripts(db, 0)
    assert await _traces(session_factory, ("plum-lantern",)) == []
    assert await _traces(session_factory, (OTHER_TEXT, CUSTOMER_TEXTS[0])) != []  # recent ones kept
    async with session_factory() as db:
        audit = (
            await db.execute(select(AuditLog).where(AuditLog.action == "purge_transcripts"))
        ).scalar_one()
    assert audit.actor == "cli" and audit.details["messages"] == 1


# ---- admin API ---------------------------------------------------------------------------


class TrackerStub:
    """Rasa's tracker API: records PUTs (the erasure) or answers 500 when told to."""

    def __init__(self) -> None:
        self.replaced: list[tuple[str, Any, str]] = []
        self.fail = False

    async def replace(self, request: web.Request) -> web.Response:
        if self.fail:
            return web.Response(status=500)
        self.replaced.append(
            (request.match_info["sender"], await request.json(), request.query.get("token", ""))
        )
        return web.json_response({"events": []})


@pytest.fixture
async def tracker_stub() -> AsyncIterator[tuple[TrackerStub, str]]:
    stub = TrackerStub()
    app = web.Application()
    app.router.add_put("/conversations/{sender}/tracker/events", stub.replace)
    server = TestServer(app)
    await server.start_server()
    yield stub, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def api(
    engine: Any, settings: Settings, tracker_stub: tuple[TrackerStub, str]
) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(replace(settings, rasa_url=tracker_stub[1], rasa_timeout_seconds=2.0))
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_api_export_and_erase_are_admin_only(
    api: TestClient[Any, Any], session_factory: Sessions, tracker_stub: tuple[TrackerStub, str]
) -> None:
    seeded = await _seed(session_factory)
    await create_staff(session_factory)
    export_url = f"/api/customers/{EXTERNAL_ID}/export"
    erase_url = f"/api/customers/{EXTERNAL_ID}/erase"
    for role in (StaffRole.agent, StaffRole.cx_manager):
        token = bearer(await create_api_token(session_factory, role))
        assert (await api.get(export_url, headers=token)).status == 403
        assert (await api.post(erase_url, headers=token)).status == 403
    assert (await api.get(export_url)).status == 401
    assert (await api.post(erase_url)).status == 401

    admin = bearer(await create_api_token(session_factory, StaffRole.admin))
    response = await api.get(export_url, headers=admin)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "attachment" in response.headers["Content-Disposition"]
    assert (await response.json())["customer"]["email"] == EMAIL
    assert (await api.get("/api/customers/NOBODY/export", headers=admin)).status == 404

    response = await api.post(erase_url, headers=admin)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["customer_id"] == seeded.customer_id and body["already_erased"] is False
    assert body["trackers"] == {"cleared": 1, "failed": [], "error": None}
    assert tracker_stub[0].replaced == [(seeded.conversation_id, [], "dev-rasa-token")]
    assert await _traces(session_factory, SECRETS) == []
    async with session_factory() as db:
        actors = (
            await db.execute(
                select(AuditLog.action, AuditLog.actor).where(AuditLog.target_type == "customer")
            )
        ).all()
    assert sorted(a.action for a in actors) == ["erase_customer", "export_customer"]
    assert all(a.actor.startswith("token:") for a in actors)


async def test_api_erase_reports_trackers_rasa_did_not_clear_and_retries(
    api: TestClient[Any, Any], session_factory: Sessions, tracker_stub: tuple[TrackerStub, str]
) -> None:
    seeded = await _seed(session_factory)
    admin = bearer(await create_api_token(session_factory, StaffRole.admin))
    stub = tracker_stub[0]
    stub.fail = True
    body = await (await api.post(f"/api/customers/{EXTERNAL_ID}/erase", headers=admin)).json()
    assert body["trackers"]["failed"] == [seeded.conversation_id]
    assert "HTTP 500" in body["trackers"]["error"]
    assert await _traces(session_factory, SECRETS) == []  # the database part is done anyway
    stub.fail = False
    body = await (await api.post(f"/api/customers/{EXTERNAL_ID}/erase", headers=admin)).json()
    assert body["already_erased"] is True
    assert body["trackers"] == {"cleared": 1, "failed": [], "error": None}


async def test_api_erase_with_a_staff_cookie_needs_csrf(
    api: TestClient[Any, Any], session_factory: Sessions
) -> None:
    await _seed(session_factory)
    await create_staff(session_factory)
    csrf = await sign_in(api, StaffRole.admin)
    url = f"/api/customers/{EXTERNAL_ID}/erase"
    response = await api.post(url)
    assert response.status == 403 and (await response.json())["error"]["code"] == "csrf_failed"
    assert (await api.post(url, headers=csrf)).status == 200


# ---- CLI ---------------------------------------------------------------------------------


async def _cli(database_url: str, rasa_url: str, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "RASA_URL": rasa_url,
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_export_erase_and_purge(
    session_factory: Sessions, database_url: str, tracker_stub: tuple[TrackerStub, str]
) -> None:
    seeded = await _seed(session_factory)
    rasa_url = tracker_stub[1]
    code, out, _err = await _cli(database_url, rasa_url, "customer", "export", EXTERNAL_ID)
    assert code == 0
    assert json.loads(out)["customer"]["email"] == EMAIL

    code, out, err = await _cli(database_url, rasa_url, "customer", "erase", EXTERNAL_ID)
    assert code == 0, err
    assert f"Customer {seeded.customer_id} erased in the database" in out
    assert "Cleared 1 conversation tracker(s) in Rasa." in out
    assert tracker_stub[0].replaced == [(seeded.conversation_id, [], "dev-rasa-token")]
    assert await _traces(session_factory, SECRETS) == []

    code, out, err = await _cli(database_url, rasa_url, "customer", "erase", "NOBODY")
    assert code == 1 and "There is no customer NOBODY." in err

    code, out, _err = await _cli(database_url, rasa_url, "purge-transcripts", "--days", "30")
    assert code == 0 and "Blanked the text of 0 message(s) older than 30 days." in out


async def test_cli_erase_says_clearly_when_rasa_is_unreachable(
    session_factory: Sessions, database_url: str, unused_tcp_port: int
) -> None:
    await _seed(session_factory)
    dead = f"http://127.0.0.1:{unused_tcp_port}"
    code, out, err = await _cli(database_url, dead, "customer", "erase", EXTERNAL_ID)
    assert code == 3
    assert "erased in the database" in out
    assert f"WARNING: Rasa at {dead} could not clear 1 of 1 conversation tracker(s)" in err
    assert "Run this command again when Rasa is running." in err
    assert await _traces(session_factory, SECRETS) == []


async def test_api_erase_ends_the_customers_open_widget_tabs(
    api: TestClient[Any, Any], session_factory: Sessions
) -> None:
    """A tab left open on the erased customer's conversation is closed; reconnecting with
    its token starts a new, empty conversation (the widget then clears the page)."""
    await _seed(session_factory)
    admin = bearer(await create_api_token(session_factory, StaffRole.admin))
    identity = issue_token(Settings().widget_secret, EXTERNAL_ID)
    ws = await api.ws_connect("/ws")
    await ws.send_json({"type": "hello", "token": None, "identity": identity})
    session_frame = await ws.receive_json(timeout=5)
    assert session_frame["type"] == "session" and session_frame["identity"] == "verified"
    bystander = await api.ws_connect("/ws")
    await bystander.send_json({"type": "hello", "token": None})
    assert (await bystander.receive_json(timeout=5))["type"] == "session"

    response = await api.post(f"/api/customers/{EXTERNAL_ID}/erase", headers=admin)
    assert response.status == 200

    closed = await ws.receive(timeout=5)
    assert closed.type is WSMsgType.CLOSE
    assert (closed.data, closed.extra) == (WSCloseCode.POLICY_VIOLATION, "conversation erased")
    assert not bystander.closed
    again = await api.ws_connect("/ws")
    await again.send_json({"type": "hello", "token": session_frame["token"]})
    fresh = await again.receive_json(timeout=5)
    assert fresh["type"] == "session"
    assert fresh["token"] != session_frame["token"]
    assert (fresh["identity"], fresh["history"]) == ("anonymous", [])
    for socket in (bystander, again):
        await socket.close()


async def test_erase_drops_her_events_still_waiting_for_the_worker(
    session_factory: Sessions,
) -> None:
    await _seed(session_factory)
    async with session_factory() as db, db.begin():
        await privacy.erase_customer(db, EXTERNAL_ID, actor="staff:1")
    async with session_factory() as db:
        queued = await db.get(ShopEvent, "evt-2")
    assert queued is not None
    assert (queued.status, queued.payload, queued.customer_ref) == (
        ShopEventStatus.failed,
        None,
        None,
    )
    assert queued.result == {
        "error": {
            "code": "customer_erased",
            "message": "The customer was erased before this event was applied.",
        }
    }


# ---- a customer who came back after an erasure (issue #16, item 4) ----------------------


async def _comes_back(sessions: Sessions, visit: int) -> tuple[int, str, tuple[str, ...]]:
    """The shop's next identity token for the erased customer (the real path: a new
    customer row with the same shop id), then a chat; returns what she left this time."""
    email, name = f"zelda.visit{visit}@example.org", f"Zelda Visit{visit}"
    text = f"I am back, visit {visit}, my email is {email}, blueberry-compass-{visit}"
    async with sessions() as db, db.begin():
        chat = await conversations.start_or_resume(
            db,
            None,
            CustomerClaims(
                external_id=EXTERNAL_ID,
                email=email,
                name=name,
                jti=f"visit-{visit}",
                expires_at=utcnow() + timedelta(minutes=30),
            ),
        )
        assert chat.customer is not None
        db.add(
            Message(conversation_id=chat.conversation.id, sender=MessageSender.customer, text=text)
        )
        return chat.customer.id, chat.conversation.id, (email, name, text)


async def test_a_returning_customer_can_be_erased_again_any_number_of_times(
    session_factory: Sessions,
) -> None:
    seeded = await _seed(session_factory)
    async with session_factory() as db, db.begin():
        await privacy.erase_customer(db, EXTERNAL_ID)
    left: tuple[str, ...] = SECRETS
    returning_ids: list[int] = []
    conversation_ids = [seeded.conversation_id]
    for visit in (1, 2, 3):
        customer_id, conversation_id, traces = await _comes_back(session_factory, visit)
        assert customer_id not in (seeded.customer_id, *returning_ids)  # a new row each time
        returning_ids.append(customer_id)
        conversation_ids.append(conversation_id)
        left += traces
        assert await _traces(session_factory, traces) != []
        async with session_factory() as db, db.begin():
            erasure = await privacy.erase_customer(db, EXTERNAL_ID, actor="staff:1")
        assert erasure.customer_id == customer_id and not erasure.already_erased
        assert erasure.counts["profile"] == 1 and erasure.counts["messages"] == 1
        # Every conversation the shop's id ever had, so Rasa's trackers are (re)cleared.
        assert sorted(erasure.conversation_ids) == sorted(conversation_ids)
        assert await _traces(session_factory, left) == []

    # Repeatable by the id the shop knows: nothing left to change, no new audit row.
    async with session_factory() as db:
        audits_before = len((await db.execute(select(AuditLog.id))).all())
    async with session_factory() as db, db.begin():
        again = await privacy.erase_customer(db, EXTERNAL_ID)
    assert again.already_erased and again.customer_id == returning_ids[-1]
    assert set(again.counts.values()) == {0}
    assert sorted(again.conversation_ids) == sorted(conversation_ids)
    async with session_factory() as db:
        assert len((await db.execute(select(AuditLog.id))).all()) == audits_before
        rows = (await db.execute(select(Customer).order_by(Customer.id))).scalars().all()
        theirs = [c for c in rows if c.id in (seeded.customer_id, *returning_ids)]
        assert len(theirs) == 4
        assert all(c.external_id.startswith(privacy.ERASED_PREFIX) for c in theirs)
        assert all(c.email is None and c.name is None for c in theirs)
        assert len({c.external_id for c in theirs}) == 4
        # Each row can still be found and exported by the shop's id or by our id.
        assert (await privacy.find_customer(db, EXTERNAL_ID)).id == returning_ids[-1]
        for row in theirs:
            assert (await privacy.find_customer(db, row.id)).id == row.id
        otto = await db.get(Customer, seeded.other_id)
        assert otto is not None and otto.email == OTHER_EMAIL

    # Late data on the first row is still caught by a repeat by the shop's id.
    late = "arrived on the first erased row later, damson-trellis"
    async with session_factory() as db, db.begin():
        db.add(
            Message(
                conversation_id=seeded.conversation_id, sender=MessageSender.customer, text=late
            )
        )
    async with session_factory() as db, db.begin():
        fourth = await privacy.erase_customer(db, EXTERNAL_ID)
    assert fourth.counts["messages"] == 1
    assert await _traces(session_factory, (late, *left)) == []


async def test_api_erases_a_returning_customer_again(
    api: TestClient[Any, Any], session_factory: Sessions, tracker_stub: tuple[TrackerStub, str]
) -> None:
    seeded = await _seed(session_factory)
    admin = bearer(await create_api_token(session_factory, StaffRole.admin))
    url = f"/api/customers/{EXTERNAL_ID}/erase"
    assert (await api.post(url, headers=admin)).status == 200
    customer_id, conversation_id, traces = await _comes_back(session_factory, 1)
    for _ in range(3):
        response = await api.post(url, headers=admin)
        assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["customer_id"], body["already_erased"]) == (customer_id, True)
    assert sorted(body["conversation_ids"]) == sorted([seeded.conversation_id, conversation_id])
    assert body["trackers"]["failed"] == []
    assert await _traces(session_factory, (*SECRETS, *traces)) == []
