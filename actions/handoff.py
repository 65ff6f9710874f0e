"""Escalation to a person: on request, and after two failed understandings in a row."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from sqlalchemy.ext.asyncio import AsyncSession

from actions.services import DomainAction, get_services
from bot.domain import chat
from bot.storage.models import EscalationReason

FALLBACK_INTENTS = frozenset({"nlu_fallback"})


def failed_in_a_row(tracker: Tracker) -> int:
    """How many of the latest user messages in a row the bot did not understand."""
    count = 0
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent not in FALLBACK_INTENTS:
            break
        count += 1
    return count


class ActionEscalate(DomainAction, Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_escalate"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        return await chat.request_human(
            session,
            tracker.sender_id,
            EscalationReason.customer_request,
            get_services().settings.support_hours,
        )


class ActionHandleFallback(DomainAction, Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_handle_fallback"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        if failed_in_a_row(tracker) >= 2:
            return await chat.request_human(
                session,
                tracker.sender_id,
                EscalationReason.fallback,
                get_services().settings.support_hours,
            )
        return chat.Turn().say(chat.FALLBACK_REPLY, chat.MENU_BUTTONS)


class ActionStartSupportSurvey(DomainAction, Action):  # type: ignore[misc]
    """Triggered (EXTERNAL_support_resolved) when an agent hands the chat back."""

    def name(self) -> str:
        return "action_start_support_survey"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        return await chat.start_support_survey(session, get_services().settings, tracker.sender_id)
