"""Hand-made escalations with known support-operations figures (tests of issue #21).

Range March 2026 UTC, now 2026-04-01 00:00 UTC, SLA: first reply 15 min, resolution 24 h.

| esc | chat | reason (priority) | opened | agent | first agent reply | resolved |
|---|---|---|---|---|---|---|
| E1 | conv-a | customer_request (2) | 03-02 10:00 | Alice | 10:05 (5 min) | 12:00 (2 h) |
| E2 | conv-b | negative_feedback (3) | 03-03 09:00 | Bob | 09:30 (30 min, late) | 03-05 09:00 (48 h, late) |
| E3 | conv-c | fallback (1) | 03-10 08:00 | Alice | 08:10 (10 min; 07:00 was before it) | 09:00 (1 h) |
| E4 | conv-d | customer_request (2) | 03-31 23:00 | - | none: 60 min by now, late | open (1 h: not yet) |
| E5 | - | negative_feedback (3) | 03-20 10:00 | Bob | - (no chat) | 03-21 15:00 (29 h, late) |
| E6 | conv-a | customer_request (2) | 02-27 10:00 (outside) | Bob | - | 02-27 11:00 |

Support surveys (support_resolved dispatches of the chats, answered in March): conv-a CSAT 5
and CES 2 after E1 (Alice, not Bob: E1 was resolved after E6), conv-b CSAT 2 and CES 6
(Bob), conv-c CSAT 4 (Alice).

Expected: 5 escalations, 4 chats, 3 replied, mean first reply 15.0 min, 2 within SLA,
first-reply breaches 2 (E2, E4); 4 resolved, mean 20.0 h, 2 within, resolution breaches 2
(E2, E5). Alice: 2 / 7.5 min / 1.5 h / CSAT 100 % of 2 / CES 2.0; Bob: 2 / 30.0 min /
38.5 h / CSAT 0 % of 1 / CES 6.0.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.enums import (
    AcquisitionSource,
    Channel,
    EscalationReason,
    EscalationStatus,
    FeedbackKind,
    FeedbackSource,
    LifecycleKind,
    MessageSender,
    StaffRole,
    Stage,
)
from bot.storage.models import (
    Conversation,
    Customer,
    Escalation,
    Feedback,
    Lifecycle,
    Message,
    StaffUser,
    SurveyDispatch,
)

NOW = datetime(2026, 4, 1, tzinfo=timezone.utc)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


async def seed_support_ops(session_factory: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with session_factory() as db, db.begin():
        alice = StaffUser(
            email="alice@example.com", display_name="Alice", role=StaffRole.agent, password_hash="x"
        )
        bob = StaffUser(
            email="bob@example.com", display_name="Bob", role=StaffRole.agent, password_hash="x"
        )
        customer = Customer(
            external_id="S1", name="Sam", acquisition_source=AcquisitionSource.search
        )
        db.add_all([alice, bob, customer])
        await db.flush()
        lifecycle = Lifecycle(
            customer_id=customer.id,
            kind=LifecycleKind.one_time,
            stage=Stage.support,
            opened_at=at("2026-02-01T00:00:00"),
        )
        db.add(lifecycle)
        for cid in ("conv-a", "conv-b", "conv-c", "conv-d"):
            db.add(
                Conversation(id=cid, customer_id=customer.id, created_at=at("2026-02-01T00:00:00"))
            )
        await db.flush()

        def escalation(
            conversation: str | None,
            reason: EscalationReason,
            priority: int,
            opened: str,
            agent: StaffUser | None,
            resolved: str | None,
        ) -> Escalation:
            return Escalation(
                conversation_id=conversation,
                customer_id=customer.id,
                reason=reason,
                priority=priority,
                status=EscalationStatus.resolved if resolved else EscalationStatus.waiting,
                created_at=at(opened),
                claimed_by_id=agent.id if agent else None,
                claimed_at=at(opened) if agent else None,
                resolved_at=at(resolved) if resolved else None,
            )

        db.add_all(
            [
                escalation(
                    "conv-a",
                    EscalationReason.customer_request,
                    2,
                    "2026-03-02T10:00:00",
                    alice,
                    "2026-03-02T12:00:00",
                ),
                escalation(
                    "conv-b",
                    EscalationReason.negative_feedback,
                    3,
                    "2026-03-03T09:00:00",
                    bob,
                    "2026-03-05T09:00:00",
                ),
                escalation(
                    "conv-c",
                    EscalationReason.fallback,
                    1,
                    "2026-03-10T08:00:00",
                    alice,
                    "2026-03-10T09:00:00",
                ),
                escalation(
                    "conv-d",
                    EscalationReason.customer_request,
                    2,
                    "2026-03-31T23:00:00",
                    None,
                    None,
                ),
                escalation(
                    None,
                    EscalationReason.negative_feedback,
                    3,
                    "2026-03-20T10:00:00",
                    bob,
                    "2026-03-21T15:00:00",
                ),
                escalation(
                    "conv-a",
                    EscalationReason.customer_request,
                    2,
                    "2026-02-27T10:00:00",
                    bob,
                    "2026-02-27T11:00:00",
                ),
            ]
        )
        messages = [
            ("conv-a", MessageSender.customer, "2026-03-02T10:00:00"),
            ("conv-a", MessageSender.bot, "2026-03-02T10:01:00"),
            ("conv-a", MessageSender.agent, "2026-03-02T10:05:00"),
            ("conv-a", MessageSender.agent, "2026-03-02T10:06:00"),
            ("conv-b", MessageSender.agent, "2026-03-03T09:30:00"),
            ("conv-c", MessageSender.agent, "2026-03-10T07:00:00"),
            ("conv-c", MessageSender.agent, "2026-03-10T08:10:00"),
            ("conv-d", MessageSender.customer, "2026-03-31T23:00:00"),
        ]
        for conversation, sender, when in messages:
            db.add(
                Message(conversation_id=conversation, sender=sender, text="…", created_at=at(when))
            )
        await db.flush()
        answers = [
            ("conv-a", "2026-03-02T12:00:30", [(FeedbackKind.csat, 5), (FeedbackKind.ces, 2)]),
            ("conv-b", "2026-03-05T09:00:10", [(FeedbackKind.csat, 2), (FeedbackKind.ces, 6)]),
            ("conv-c", "2026-03-10T09:00:05", [(FeedbackKind.csat, 4)]),
        ]
        n = 0
        for conversation, sent, scores in answers:
            dispatch = SurveyDispatch(
                customer_id=customer.id,
                lifecycle_id=lifecycle.id,
                conversation_id=conversation,
                trigger="support_resolved",
                survey_kind=FeedbackKind.csat,
                created_at=at(sent),
                sent_at=at(sent),
                answered_at=at(sent),
            )
            db.add(dispatch)
            await db.flush()
            for kind, score in scores:
                n += 1
                db.add(
                    Feedback(
                        idempotency_key=f"ops{n}",
                        customer_id=customer.id,
                        lifecycle_id=lifecycle.id,
                        stage=Stage.support,
                        channel=Channel.website_chat,
                        source=FeedbackSource.chat_survey,
                        kind=kind,
                        score=score,
                        survey_dispatch_id=dispatch.id,
                        conversation_id=conversation,
                        created_at=at(sent).replace(second=59),
                    )
                )
        return {"alice": alice.id, "bob": bob.id}
