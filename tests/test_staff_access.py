"""Agents read their work only (issue #22, bot/domain/staff_access.py): the queue, what
they claimed or were transferred, conversations they took part in, and the past
conversations of customers whose chat they hold or that wait in the queue. CX managers and
admins read everything. On SQLite and PostgreSQL, in the domain and over HTTP (console
conversation, transcript and customer panel; notes; `/api/insights/{id}` feedback rows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import escalations, handoff, staff, staff_access
from bot.domain.enums import (
    Channel,
    EscalationReason,
    FeedbackKind,
    FeedbackSource,
    InsightOrigin,
    InsightStatus,
    InsightTeam,
    LifecycleKind,
    StaffRole,
    Stage,
)
from bot.storage.models import (
    Conversation,
    Customer,
    Feedback,
    Insight,
    InsightFeedback,
    Lifecycle,
    StaffUser,
)
from tests.staff_helpers import PASSWORD, create_api_token, create_staff, sign_in

Client = TestClient[Any, Any]
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        staff, "password_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@dataclass
class World:
    agent: StaffUser  # agent@example.com (A)
    other: StaffUser  # agent2@example.com (B)
    insight_id: int
    conversations: list[str]


# Who may read which conversation (A = agent@, B = agent2@).
READABLE_BY_A = {"x_now", "x_old", "moved_on", "handed_to_a", "noted_by_a"}
READABLE_BY_B = {"y_now", "y_old", "x_now", "x_old", "moved_on", "handed_to_a", "z_old"}


async def _world(sessions: Sessions) -> World:
    """Customers X (her chat waits in the queue), Y (B holds her chat), Z (B resolved her
    chat long ago, nobody holds or waits), an anonymous chat that never reached a person,
    and escalations moved between A and B."""
    await create_staff(sessions)
    async with sessions() as db, db.begin():
        await staff.create_user(db, "agent2@example.com", "Agent Two", StaffRole.agent, PASSWORD)
    async with sessions() as db, db.begin():
        a = await staff.get_user_by_email(db, "agent@example.com")
        b = await staff.get_user_by_email(db, "agent2@example.com")
        assert a is not None and b is not None
        customers = {n: Customer(external_id=n, name=f"Customer {n}") for n in "XYZ"}
        db.add_all(customers.values())
        await db.flush()
        owners = {
            "x_now": "X",
            "x_old": "X",
            "y_now": "Y",
            "y_old": "Y",
            "z_old": "Z",
            "bot_only": None,
            "moved_on": None,
            "handed_to_a": None,
            "noted_by_a": None,
        }
        for name, owner in owners.items():
            customer_id = customers[owner].id if owner else None
            db.add(Conversation(id=name, customer_id=customer_id))
        await db.flush()

        async def escalate(name: str) -> int:
            conversation = await db.get(Conversation, name)
            assert conversation is not None
            escalation, _new = await escalations.escalate(
                db, conversation, EscalationReason.customer_request
            )
            return escalation.id

        await escalate("x_now")  # waits in the queue
        y_now = await escalate("y_now")
        await handoff.claim(db, y_now, b)  # B holds Y's chat
        z_old = await escalate("z_old")
        await handoff.claim(db, z_old, b)
        await handoff.resolve(db, z_old, b)  # B's past work
        moved_on = await escalate("moved_on")
        await handoff.claim(db, moved_on, a)
        await handoff.transfer(db, moved_on, a, b.id)  # A took part, B holds it now
        handed = await escalate("handed_to_a")
        await handoff.claim(db, handed, b)
        await handoff.transfer(db, handed, b, a.id)  # transferred to A
        await handoff.add_note(db, "noted_by_a", a, "called the customer back")

        # An insight with one feedback row from each of X's and Y's current chats.
        insight = Insight(
            title="Parcels late",
            owner_team=InsightTeam.logistics,
            status=InsightStatus.new,
            origin=InsightOrigin.feedback,
            criteria={},
            created_by="staff:1",
        )
        db.add(insight)
        await db.flush()
        for n, name in enumerate(("x_now", "y_now")):
            giver = customers[owners[name] or "X"]
            lifecycle = Lifecycle(
                customer_id=giver.id, kind=LifecycleKind.one_time, stage=Stage.use
            )
            db.add(lifecycle)
            await db.flush()
            feedback = Feedback(
                idempotency_key=f"access-{n}",
                customer_id=giver.id,
                lifecycle_id=lifecycle.id,
                stage=Stage.use,
                channel=Channel.website_chat,
                source=FeedbackSource.free_text,
                kind=FeedbackKind.complaint,
                text=f"late again ({name})",
                conversation_id=name,
            )
            db.add(feedback)
            await db.flush()
            db.add(InsightFeedback(insight_id=insight.id, feedback_id=feedback.id))
        await db.flush()
        return World(a, b, insight.id, list(owners))


async def test_the_rule_in_the_domain(session_factory: Sessions) -> None:
    world = await _world(session_factory)
    everything = set(world.conversations)
    async with session_factory() as db:
        for role, user_id, expected in (
            (StaffRole.agent, world.agent.id, READABLE_BY_A),
            (StaffRole.agent, world.other.id, READABLE_BY_B),
            (StaffRole.agent, None, set()),  # an agent's API token is nobody's work
            (StaffRole.cx_manager, None, everything),
            (StaffRole.admin, world.agent.id, everything),
        ):
            found = await staff_access.readable_conversations(
                db, role, user_id, world.conversations
            )
            assert found == expected, (role, user_id)
        for name in world.conversations:
            assert await staff_access.may_read_conversation(db, world.agent, name) == (
                name in READABLE_BY_A
            ), name
        assert not await staff_access.may_read_conversation(db, world.agent, "no-such-id")


async def test_agents_open_only_their_work_in_the_console(
    client: Client, session_factory: Sessions
) -> None:
    world = await _world(session_factory)
    csrf = await sign_in(client, StaffRole.agent)
    for name in world.conversations:
        response = await client.get(f"/console/api/conversations/{name}")
        body = await response.json()
        if name in READABLE_BY_A:
            assert response.status == 200, (name, body)
            assert body["conversation"]["id"] == name
        else:
            # As for an unknown id: nothing of the transcript, customer or its existence.
            assert response.status == 404, (name, body)
            assert body == {
                "error": {"code": "not_found", "message": "No such conversation in your work."}
            }
        note = await client.post(
            f"/console/api/conversations/{name}/notes", json={"text": "hi"}, headers=csrf
        )
        assert (note.status == 404) == (name not in READABLE_BY_A), name
    # X's past chat opens with its customer panel (X waits in the queue).
    panel = (await (await client.get("/console/api/conversations/x_old")).json())["customer"]
    assert panel["name"] == "Customer X"


async def test_admins_open_everything_in_the_console(
    client: Client, session_factory: Sessions
) -> None:
    world = await _world(session_factory)
    await sign_in(client, StaffRole.admin)
    for name in world.conversations:
        assert (await client.get(f"/console/api/conversations/{name}")).status == 200, name


async def test_insight_feedback_rows_of_other_work_are_left_out_for_agents(
    client: Client, session_factory: Sessions
) -> None:
    world = await _world(session_factory)
    url = f"/api/insights/{world.insight_id}"

    def conversations(body: dict[str, Any]) -> list[str]:
        return sorted(item["conversation_id"] for item in body["feedback"]["items"])

    await sign_in(client, StaffRole.agent)
    body = await (await client.get(url)).json()
    assert conversations(body) == ["x_now"]
    assert "Customer Y" not in str(body) and "y_now" not in str(body)
    assert body["feedback"]["total"] == 2
    client.session.cookie_jar.clear()

    token = await create_api_token(session_factory, StaffRole.agent)
    body = await (await client.get(url, headers={"Authorization": f"Bearer {token}"})).json()
    assert conversations(body) == []

    for role in (StaffRole.cx_manager, StaffRole.admin):
        client.session.cookie_jar.clear()
        await sign_in(client, role)
        assert conversations(await (await client.get(url)).json()) == ["x_now", "y_now"], role
