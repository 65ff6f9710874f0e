"""Complaints and praise typed freely in the chat."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from sqlalchemy.ext.asyncio import AsyncSession

from actions.services import DomainAction, latest_intent, latest_text
from bot.domain import chat
from bot.storage.models import FeedbackKind


class ActionRecordOpinion(DomainAction, Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_record_opinion"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        kind = FeedbackKind.praise if latest_intent(tracker) == "praise" else FeedbackKind.complaint
        message_id = str(tracker.latest_message.get("message_id") or len(tracker.events))
        return await chat.record_opinion(
            session, tracker.sender_id, kind, latest_text(tracker), message_id
        )
