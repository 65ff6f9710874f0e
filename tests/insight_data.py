"""Hand-made feedback about delivery, before and after a change applied on 2026-05-01 00:00 UTC.

Compared as of 2026-05-31 00:00 UTC: after = [05-01, 05-31), before = [04-01, 05-01).
Delivery comments carry the theme; their survey's CSAT is matched through the dispatch.

before: P csat 1 + comment -0.6; Q csat 2 + comment -0.4; S csat 4 + comment 0.3;
        R (anonymous) complaint -0.8 without survey; a csat 1 of P without survey or theme
        (not matching); 03-31 23:59:59 a comment -0.9 (outside)
        -> 7 rows, CSAT 33.3 % (1 of 3), sentiment -0.375, negative 5 (71.4 %)
after:  S csat 5 + comment 0.8; Q csat 4 + comment 0.5; S csat 2 + comment -0.3;
        05-01 00:00:00 a comment 0.1 of S (in); 05-31 00:00:00 a comment -0.9 (out)
        -> 7 rows, CSAT 66.7 % (2 of 3), sentiment 0.275, negative 2 (28.6 %)

A theme insight over April links the negative delivery rows: P's and Q's comments and R's
complaint (3 rows, 3 customers, 2 of them identified: P and Q).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.enums import Channel, FeedbackKind, FeedbackSource, LifecycleKind, Stage
from bot.storage.models import Customer, Feedback, Lifecycle, SurveyDispatch

APPLIED = datetime(2026, 5, 1, tzinfo=timezone.utc)
NOW = datetime(2026, 5, 31, tzinfo=timezone.utc)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class InsightData:
    customers: dict[str, int]  # P, Q, R, S
    external_ids: dict[str, str]
    comments: dict[str, int]  # "P-before", "Q-before": feedback ids of the negative comments


async def seed_insight_data(session_factory: async_sessionmaker[AsyncSession]) -> InsightData:
    async with session_factory() as db, db.begin():
        customers = {
            "P": Customer(external_id="P100", name="Pat", email="pat@example.com"),
            "Q": Customer(external_id="Q100", name="Quinn", email="quinn@example.com"),
            "R": Customer(external_id="anon-r", is_anonymous=True),
            "S": Customer(external_id="S100", name="Sam", email="sam@example.com"),
        }
        db.add_all(customers.values())
        await db.flush()
        lifecycles = {}
        for letter, customer in customers.items():
            lifecycles[letter] = Lifecycle(
                customer_id=customer.id,
                kind=LifecycleKind.one_time,
                stage=Stage.use,
                opened_at=at("2026-03-01T00:00:00"),
            )
        db.add_all(lifecycles.values())
        await db.flush()
        n = 0

        async def row(
            letter: str,
            when: str,
            kind: FeedbackKind,
            *,
            score: int | None = None,
            sentiment: float | None = None,
            themes: list[str] | None = None,
            dispatch: SurveyDispatch | None = None,
        ) -> Feedback:
            nonlocal n
            n += 1
            lifecycle = lifecycles[letter]
            feedback = Feedback(
                idempotency_key=f"insight-{n}",
                customer_id=lifecycle.customer_id,
                lifecycle_id=lifecycle.id,
                stage=Stage.use,
                channel=Channel.website_chat,
                source=FeedbackSource.chat_survey if dispatch else FeedbackSource.free_text,
                kind=kind,
                score=score,
                text="the parcel" if themes else None,
                sentiment=sentiment,
                themes=themes or [],
                survey_dispatch_id=dispatch.id if dispatch else None,
                created_at=at(when),
            )
            db.add(feedback)
            await db.flush()
            return feedback

        async def survey(letter: str, when: str, score: int, sentiment: float) -> Feedback:
            lifecycle = lifecycles[letter]
            dispatch = SurveyDispatch(
                customer_id=lifecycle.customer_id,
                lifecycle_id=lifecycle.id,
                trigger="order_delivered",
                survey_kind=FeedbackKind.csat,
                created_at=at(when),
                sent_at=at(when),
                answered_at=at(when),
            )
            db.add(dispatch)
            await db.flush()
            await row(letter, when, FeedbackKind.csat, score=score, dispatch=dispatch)
            return await row(
                letter,
                when,
                FeedbackKind.comment,
                sentiment=sentiment,
                themes=["delivery"],
                dispatch=dispatch,
            )

        delivery = ["delivery"]
        p_before = await survey("P", "2026-04-05T10:00:00", 1, -0.6)
        q_before = await survey("Q", "2026-04-10T10:00:00", 2, -0.4)
        await survey("S", "2026-04-20T10:00:00", 4, 0.3)
        await row(
            "R", "2026-04-25T10:00:00", FeedbackKind.complaint, sentiment=-0.8, themes=delivery
        )
        await row("P", "2026-04-26T10:00:00", FeedbackKind.csat, score=1)
        await row("P", "2026-03-31T23:59:59", FeedbackKind.comment, sentiment=-0.9, themes=delivery)
        await survey("S", "2026-05-03T10:00:00", 5, 0.8)
        await survey("Q", "2026-05-10T10:00:00", 4, 0.5)
        await survey("S", "2026-05-20T10:00:00", 2, -0.3)
        await row("S", "2026-05-01T00:00:00", FeedbackKind.comment, sentiment=0.1, themes=delivery)
        await row("S", "2026-05-31T00:00:00", FeedbackKind.comment, sentiment=-0.9, themes=delivery)
        return InsightData(
            customers={k: c.id for k, c in customers.items()},
            external_ids={k: c.external_id for k, c in customers.items()},
            comments={"P-before": p_before.id, "Q-before": q_before.id},
        )
