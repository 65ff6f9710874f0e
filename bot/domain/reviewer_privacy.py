"""Data rights of reviewers who are not known customers (issue #23): export and erasure.

A reviewer is found by email (case-insensitive) or by handle (exact, any channel): one
person may have written on several platforms, so every matching reviewer row is covered.
`python -m bot customer export|erase REF` falls back to this when REF names no customer.

Erasure blanks what identifies the person and keeps the anonymised figures, as for a
customer: the email, the handle (becomes `erased-<id>`), their review texts and public
URLs, and the summaries of follow-ups opened for them. Stars, sentiment and themes stay
(they are metrics), as for a customer.
Audited; running it again changes nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import audit
from bot.domain.errors import NotFound
from bot.domain.privacy import row_json
from bot.storage.models import Escalation, Feedback, Reviewer, utcnow

EXPORT_FORMAT = "shop-feedback-reviewer-export/1"
ERASED_HANDLE = "erased-"


async def find_reviewers(session: AsyncSession, ref: str) -> list[Reviewer]:
    ref = ref.strip()
    rows = list(
        await session.scalars(
            select(Reviewer)
            .where(or_(func.lower(Reviewer.email) == ref.lower(), Reviewer.handle == ref))
            .order_by(Reviewer.id)
        )
    )
    if not rows or not ref:
        raise NotFound(f"There is no customer {ref}. Nor a reviewer with that email or handle.")
    return rows


async def export_reviewers(session: AsyncSession, ref: str, *, actor: str) -> dict[str, Any]:
    """Everything held about the reviewer(s) named by `ref`, JSON-ready; audited."""
    reviewers = await find_reviewers(session, ref)
    found = []
    for reviewer in reviewers:
        feedback = list(
            await session.scalars(
                select(Feedback).where(Feedback.reviewer_id == reviewer.id).order_by(Feedback.id)
            )
        )
        escalations = list(
            await session.scalars(
                select(Escalation)
                .where(Escalation.feedback_id.in_([f.id for f in feedback]))
                .order_by(Escalation.id)
            )
        )
        found.append(
            {
                **row_json(reviewer),
                "feedback": [row_json(f) for f in feedback],
                "escalations": [row_json(e) for e in escalations],
            }
        )
        session.add(audit.entry(actor, "export_reviewer", "reviewer", reviewer.id, {}))
    await session.flush()
    return {"format": EXPORT_FORMAT, "exported_at": utcnow().isoformat(), "reviewers": found}


async def erase_reviewers(session: AsyncSession, ref: str, *, actor: str) -> dict[str, int]:
    """Blank the personal data of the reviewer(s) named by `ref`; counts per kind."""
    reviewers = await find_reviewers(session, ref)
    totals: dict[str, int] = {}
    for reviewer in reviewers:
        theirs = select(Feedback.id).where(Feedback.reviewer_id == reviewer.id)
        texts = await session.execute(
            update(Feedback)
            .where(
                Feedback.reviewer_id == reviewer.id,
                or_(Feedback.text.is_not(None), Feedback.source_url.is_not(None)),
            )
            .values(text=None, source_url=None)
        )
        summaries = await session.execute(
            update(Escalation)
            .where(Escalation.feedback_id.in_(theirs), Escalation.summary.is_not(None))
            .values(summary=None)
        )
        erased_handle = f"{ERASED_HANDLE}{reviewer.id}"
        profile = int(reviewer.email is not None or reviewer.handle != erased_handle)
        reviewer.email = None
        reviewer.handle = erased_handle
        counts = {
            "feedback_texts": int(getattr(texts, "rowcount", 0) or 0),
            "escalations": int(getattr(summaries, "rowcount", 0) or 0),
            "profile": profile,
        }
        if any(counts.values()):
            session.add(audit.entry(actor, "erase_reviewer", "reviewer", reviewer.id, counts))
        for kind, n in counts.items():
            totals[kind] = totals.get(kind, 0) + n
    await session.flush()
    return totals
