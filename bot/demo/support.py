"""Demo support operations: escalations handled by the demo agents, and applied insights.

Runs at the end of the demo load (bot/demo/loader.py), in its transaction, over the feedback it
wrote, so the dashboard's Support operations page and the insight before/after view have
data drawn from the real tables:

* **Hand-overs**: every support complaint typed in the chat (channel website_chat or
  support) becomes a `customer_request` escalation with its conversation: the customer's
  message, the agent's first reply (median ~5 minutes, about one in ten later than the
  15-minute SLA; Alex answers a little slower than Sam) and the agent's closing message.
  When the complaint had a post-support survey (`support_resolved` dispatch), the chat is
  resolved just before that survey was sent and the dispatch is linked to the conversation,
  so its CSAT and CES answers count for the agent; otherwise it is resolved after 1-30 h.
* **Follow-ups**: about a third of the very unhappy survey answers (CSAT 1, NPS 0-3) get a
  `negative_feedback` follow-up (`closed_loop.follow_up`, due in 48 h) without a
  conversation, claimed after 1-20 h and resolved some hours later (a few past the 24-hour
  resolution SLA). None is left open: chats and follow-ups not resolved by now are left
  out, so the console's queue gets no demo items.
* **Insights**: two applied ones (`insights.create` / `move`): the checkout bug fix at the
  end of the planted purchase dip (applied 128 days ago) and DPD delay warnings (45 days
  ago). Both windows have well over 14 days and 10 answers; neither shows a significant
  change (the crowd has no checkout bug, and no effect is planted after either date).

The demo staff accounts (`staff.ensure_demo_users`, the same ones `python -m bot staff
demo` creates) claim the escalations. Everything is drawn from the demo's seeded random
generator, after the rest of the demo, so the load stays deterministic.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import closed_loop, insights, staff
from bot.domain.enums import (
    Channel,
    ConversationStatus,
    EscalationReason,
    EscalationStatus,
    FeedbackKind,
    InsightStatus,
    MessageSender,
    Stage,
)
from bot.domain.escalations import PRIORITY
from bot.domain.surveys import TRIGGER_ESCALATION_RESOLVED
from bot.storage.models import (
    Conversation,
    Escalation,
    Feedback,
    Message,
    StaffUser,
    SurveyDispatch,
)

# (email, share of the chats, first-reply speed factor): Alex answers a little slower.
AGENTS = (("agent@example.com", 0.55, 1.0), ("agent2@example.com", 0.45, 1.35))
FOLLOW_UP_SHARE = 0.35
FOLLOW_UP_DUE_HOURS = 48
CHAT_CHANNELS = (Channel.website_chat, Channel.support)
FIRST_REPLIES = (
    "Hi, I'm sorry about this — let me look into your order right away.",
    "Thanks for waiting. I can see the order; give me a moment to check with the warehouse.",
    "Hello! Sorry for the trouble. Could you confirm the order number for me?",
    "Hi there, thanks for explaining. I'm checking the tracking details now.",
)
CLOSING = (
    "I've arranged that for you — you'll get an email confirmation shortly.",
    "All sorted: the refund is on its way. Anything else I can help with?",
    "A replacement is on its way. Sorry again for the hassle!",
    "Done — I've added a note to your order. Have a nice day!",
)
ASK_FOR_PERSON = "Can I talk to a person, please?"


@dataclass
class SupportSummary:
    handovers: int = 0
    follow_ups: int = 0
    insights: int = 0


def _minutes(rng: random.Random, median: float, sigma: float) -> timedelta:
    return timedelta(minutes=rng.lognormvariate(math.log(median), sigma))


async def _agents(session: AsyncSession) -> list[tuple[StaffUser, float, float]]:
    await staff.ensure_demo_users(session)
    found = []
    for email, share, speed in AGENTS:
        user = await staff.get_user_by_email(session, email)
        assert user is not None
        found.append((user, share, speed))
    return found


async def _insert(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 2000):
        await session.execute(
            insert(model).execution_options(render_nulls=True), rows[start : start + 2000]
        )


async def write_support(session: AsyncSession, rng: random.Random, now: datetime) -> SupportSummary:
    agents = await _agents(session)
    # One generator per part, seeded from the demo's: how many draws the hand-overs take
    # (some depend on `now`) does not reshuffle the follow-ups.
    rng, follow_rng = random.Random(rng.getrandbits(64)), random.Random(rng.getrandbits(64))
    weights = [share for _u, share, _s in agents]
    summary = SupportSummary()

    # Post-support surveys by lifecycle: the first one sent after a complaint belongs to it.
    surveys: dict[int, list[tuple[datetime, int]]] = {}
    for d_id, lifecycle_id, created, sent in await session.execute(
        select(
            SurveyDispatch.id,
            SurveyDispatch.lifecycle_id,
            SurveyDispatch.created_at,
            SurveyDispatch.sent_at,
        )
        .where(SurveyDispatch.trigger == TRIGGER_ESCALATION_RESOLVED)
        .order_by(SurveyDispatch.id)
    ):
        surveys.setdefault(lifecycle_id, []).append((min(created, sent or created), d_id))
    complaints = (
        await session.execute(
            select(
                Feedback.id,
                Feedback.customer_id,
                Feedback.lifecycle_id,
                Feedback.created_at,
                Feedback.text,
            )
            .where(
                Feedback.kind == FeedbackKind.complaint,
                Feedback.stage == Stage.support,
                Feedback.channel.in_(CHAT_CHANNELS),
            )
            .order_by(Feedback.created_at, Feedback.id)
        )
    ).all()

    conversations: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    escalations: list[dict[str, Any]] = []
    linked: list[dict[str, Any]] = []
    used: set[int] = set()
    for n, (feedback_id, customer_id, lifecycle_id, at, text) in enumerate(complaints):
        agent, _share, speed = rng.choices(agents, weights)[0]
        opened = at + timedelta(minutes=rng.uniform(0.5, 3))
        reply = opened + _minutes(rng, 5 * speed, 0.8)
        survey = next(
            (s for s in surveys.get(lifecycle_id, ()) if s[0] > reply and s[1] not in used), None
        )
        if survey is not None:
            resolved = survey[0] - timedelta(seconds=rng.uniform(5, 60))
            used.add(survey[1])
        else:
            resolved = reply + timedelta(hours=rng.lognormvariate(math.log(4), 1.0))
        if resolved > now:
            continue  # still open: left out (the console's live queue gets no demo chats)
        conversation_id = f"demo-handover-{n + 1:05d}"
        conversations.append(
            {
                "id": conversation_id,
                "status": ConversationStatus.bot,  # handed back to the bot on resolve
                "channel": Channel.website_chat,
                "customer_id": customer_id,
                "identified_by": "demo",
                "language": "en",
                "created_at": at - timedelta(minutes=rng.uniform(1, 6)),
                "updated_at": resolved,
            }
        )
        said = [
            (MessageSender.customer, text or "I have a problem with my order.", None, at),
            (MessageSender.customer, ASK_FOR_PERSON, None, opened - timedelta(seconds=20)),
            (MessageSender.agent, rng.choice(FIRST_REPLIES), agent.display_name, reply),
        ]
        closing = resolved - timedelta(seconds=rng.uniform(20, 120))
        said.append(
            (
                MessageSender.agent,
                rng.choice(CLOSING),
                agent.display_name,
                max(closing, reply + timedelta(seconds=30)),
            )
        )
        messages.extend(
            {
                "conversation_id": conversation_id,
                "sender": sender,
                "text": body,
                "author": author,
                "created_at": when,
            }
            for sender, body, author, when in said
        )
        escalations.append(
            {
                "conversation_id": conversation_id,
                "customer_id": customer_id,
                "feedback_id": feedback_id,
                "reason": EscalationReason.customer_request,
                "priority": PRIORITY[EscalationReason.customer_request],
                "status": EscalationStatus.resolved,
                "summary": (text or "")[:200] or None,
                "created_at": opened,
                "claimed_by_id": agent.id,
                "claimed_at": reply - timedelta(seconds=rng.uniform(10, 50)),
                "resolved_at": resolved,
            }
        )
        if survey is not None:
            linked.append({"dispatch_id": survey[1], "conversation": conversation_id})
    if conversations:
        # Multi-row INSERTs (render_nulls: one statement per 2 000 rows, not one per row).
        for model, rows in (
            (Conversation, conversations),
            (Message, messages),
            (Escalation, escalations),
        ):
            await _insert(session, model, rows)
    summary.handovers = len(escalations)
    if linked:
        await session.execute(
            update(SurveyDispatch.__table__)  # type: ignore[arg-type]
            .where(SurveyDispatch.__table__.c.id == bindparam("dispatch_id"))
            .values(conversation_id=bindparam("conversation")),
            linked,
        )

    # Follow-ups of very unhappy answers, claimed and resolved by email/phone.
    unhappy = list(
        await session.scalars(
            select(Feedback)
            .where(
                ((Feedback.kind == FeedbackKind.csat) & (Feedback.score == 1))
                | ((Feedback.kind == FeedbackKind.nps) & (Feedback.score <= 3))
            )
            .order_by(Feedback.created_at, Feedback.id)
        )
    )
    follow_ups = []
    for row in unhappy:
        if follow_rng.random() >= FOLLOW_UP_SHARE:
            continue
        agent, _share, _speed = follow_rng.choices(agents, weights)[0]
        created = row.created_at + timedelta(minutes=follow_rng.uniform(0.5, 2))
        escalation = closed_loop.follow_up(row, due_hours=FOLLOW_UP_DUE_HOURS, now=created)
        claimed = created + timedelta(hours=follow_rng.uniform(1, 20))
        resolved = claimed + timedelta(hours=follow_rng.lognormvariate(math.log(3), 1.0))
        if resolved > now:
            continue  # still open: left out (no demo follow-ups in the console's queue)
        escalation.status = EscalationStatus.resolved
        escalation.claimed_by_id, escalation.claimed_at = agent.id, claimed
        escalation.resolved_at = resolved
        follow_ups.append(escalation)
    session.add_all(follow_ups)
    await session.flush()
    summary.follow_ups = len(follow_ups)
    summary.insights = await _insights(session, now)
    return summary


async def _insights(session: AsyncSession, now: datetime) -> int:
    """Two applied insights whose before/after windows (>= 14 days each side) have data."""
    planned = (
        (
            {
                "title": "Checkout: card payments failed on the final step",
                "owner_team": "web",
                "origin": "pitfall",
                "note": "Payment provider update broke 3-D Secure redirects; fixed in release 4.12.",
                "pitfall": {"stage": "purchase", "channel": None, "metric": "csat"},
                "criteria": {"stage": "purchase"},
            },
            now - timedelta(days=128),
        ),
        (
            {
                "title": "Warn customers about DPD delays in the order-status answer",
                "owner_team": "logistics",
                "origin": "theme",
                "theme": "delivery",
                "note": "The bot now tells DPD customers the expected delay up front.",
            },
            now - timedelta(days=45),
        ),
    )
    created = 0
    for body, applied_at in planned:
        start = (applied_at - timedelta(days=60)).date().isoformat()
        end = applied_at.date().isoformat()
        draft = insights.parse_draft({**body, "from": start, "to": end, "tz": "UTC"}, now.date())
        made_at = applied_at - timedelta(days=21)
        insight = await insights.create(session, draft, "cx@example.com", made_at)
        for status, at in (
            (InsightStatus.accepted, made_at + timedelta(days=1)),
            (InsightStatus.in_progress, made_at + timedelta(days=3)),
            (InsightStatus.applied, applied_at + timedelta(hours=2)),
        ):
            await insights.move(
                session,
                insight.id,
                status,
                "cx@example.com",
                at,
                applied_at=applied_at if status is InsightStatus.applied else None,
            )
        created += 1
    return created
