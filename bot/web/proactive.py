"""Proactive surveys in the widget: offer a customer's scheduled survey through Rasa.

Called when a widget says hello (or a chat becomes identified), and by the shop-events code
right after it scheduled a survey (`offer_to_customer`), so a connected customer gets it
live. The bot itself words the intro and asks for consent (EXTERNAL_proactive_survey ->
action_start_proactive_survey); here we only decide whether now is a good moment.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import ColumnElement, select

from bot.domain import conversations, proactive
from bot.domain.enums import ConversationStatus
from bot.storage.models import Conversation, Customer, utcnow
from bot.web.delivery import AppState, push_replies, turn_lock
from bot.web.keys import HUB, RASA, SESSIONS, SETTINGS
from bot.web.rasa_client import RasaUnavailable

logger = logging.getLogger(__name__)

PROACTIVE_INTENT = "EXTERNAL_proactive_survey"


def is_idle(state: dict[str, Any]) -> bool:
    """Not in a form, not waiting for a yes/no, not paused for a person."""
    active_loop = state.get("active_loop") or {}
    slots = state.get("slots") or {}
    return (
        not state.get("paused")
        and not active_loop.get("name")
        and slots.get("awaiting") in (None, "nothing")
    )


async def offer_pending_survey(app: AppState, conversation_id: str) -> bool:
    """Start the customer's waiting survey in this conversation if now is a good moment:
    the bot (not a person) is answering and the chat is not in the middle of a form or a
    question. Returns whether the bot asked it. Never raises for Rasa being down."""
    # One bot turn at a time: two tabs opening at once ask once, and the survey never lands
    # between a customer's message and its replies (the tracker is checked inside the lock).
    async with turn_lock(conversation_id):
        async with app[SESSIONS]() as session, session.begin():
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None or not conversations.bot_may_answer(conversation):
                return False
            if not await proactive.has_pending(
                session,
                conversation.customer_id,
                app[SETTINGS].survey_fatigue_days,
                utcnow(),
                conversation_id,
            ):
                return False
            by_token = conversation.identified_by == conversations.BY_TOKEN
        return await _ask(app, conversation_id, by_token)


async def _ask(app: AppState, conversation_id: str, by_token: bool) -> bool:
    rasa, hub = app[RASA], app[HUB]
    try:
        if not is_idle(await rasa.tracker_state(conversation_id)):
            return False
        if by_token:  # as before the first relayed message: Rasa must know who this is
            await rasa.set_slots(conversation_id, {"identity": "verified"})
        await hub.send(conversation_id, {"type": "typing", "on": True})
        try:
            replies = await rasa.trigger_intent(conversation_id, PROACTIVE_INTENT)
        finally:
            await hub.send(conversation_id, {"type": "typing", "on": False})
    except RasaUnavailable as exc:
        # The dispatch stays waiting (unless the action already ran); the next visit retries.
        logger.warning("could not offer a survey in %s: %s", conversation_id, exc)
        return False
    await push_replies(app, conversation_id, replies)
    return bool(replies)


async def offer_to_customer(app: AppState, customer_id: int) -> bool:
    """After a survey was scheduled: ask it live in a conversation the customer has open in
    this web process (newest first). Offline customers get it on their next visit."""
    return await _offer_in_open_chats(app, Conversation.customer_id == customer_id)


async def offer_after_event(app: AppState, customer_external_id: str) -> bool:
    """A shop event scheduled a survey: offer it live if that customer is chatting now."""
    customer = select(Customer.id).where(Customer.external_id == customer_external_id)
    return await _offer_in_open_chats(app, Conversation.customer_id == customer.scalar_subquery())


async def _offer_in_open_chats(app: AppState, of_customer: ColumnElement[bool]) -> bool:
    if app[HUB].total() == 0:
        return False  # nobody is chatting with this web process: nothing to look up
    async with app[SESSIONS]() as session:
        candidates = (
            await session.scalars(
                select(Conversation.id)
                .where(of_customer, Conversation.status == ConversationStatus.bot)
                .order_by(Conversation.updated_at.desc())
                .limit(20)
            )
        ).all()
    for conversation_id in candidates:
        if app[HUB].connected(conversation_id) and await offer_pending_survey(app, conversation_id):
            return True
    return False
