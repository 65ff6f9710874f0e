"""Support flows: orders, deliveries, returns, refunds, billing, subscriptions, products."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from sqlalchemy.ext.asyncio import AsyncSession

from actions.services import DomainAction, get_services, latest_intent, latest_text
from bot.domain import chat


class ActionSupportRequest(DomainAction, Action):  # type: ignore[misc]
    """Answers the support request remembered in `support_request` for the verified order."""

    def name(self) -> str:
        return "action_support_request"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        return await chat.support_request(
            session,
            get_services().settings,
            tracker.sender_id,
            tracker.get_slot("support_request"),
            verified=tracker.get_slot("identity") == "verified",
            order_number=tracker.get_slot("order_number"),
        )


class ActionResolvePending(DomainAction, Action):  # type: ignore[misc]
    """Carries out (on "yes") or drops (on "no") the change the bot asked to confirm."""

    def name(self) -> str:
        return "action_resolve_pending"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        return await chat.resolve_pending(
            session,
            get_services().settings,
            tracker.sender_id,
            tracker.get_slot("pending_action"),
            confirmed=latest_intent(tracker) == "affirm",
            new_address=tracker.get_slot("new_address"),
        )


class ActionConfirmAddress(DomainAction, Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_confirm_address"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        return await chat.confirm_address(
            session, tracker.sender_id, str(tracker.get_slot("new_address") or "")
        )


class ValidateAddressForm(FormValidationAction):  # type: ignore[misc]
    def name(self) -> str:
        return "validate_address_form"

    async def validate_new_address(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> dict[str, Any]:
        # The address is checked when confirming; here it is only trimmed.
        return {"new_address": " ".join(str(value or "").split())[:400] or None}


class ActionAnswerProductQuestion(DomainAction, Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_answer_product_question"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        return await chat.product_question(session, tracker.sender_id, latest_text(tracker))
