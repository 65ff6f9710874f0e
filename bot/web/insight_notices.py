"""Tell a customer, in the chat they just opened, what changed because of their feedback.

Called by bot/web/chat.py when a conversation is (or becomes) identified, before any
proactive survey. Each applied insight is told once per customer: the notice row and the
transcript message are committed together, and the unique (insight, customer) key makes a
second tab or another web replica lose the race (IntegrityError: skipped).
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from bot.domain import conversations, insights
from bot.storage.models import Conversation, Message, utcnow
from bot.web.delivery import AppState, announce
from bot.web.keys import SESSIONS

logger = logging.getLogger(__name__)


async def deliver_insight_notices(app: AppState, conversation_id: str) -> int:
    """Send every pending notice of this conversation's customer; returns how many."""
    sessions = app[SESSIONS]
    async with sessions() as session:
        conversation = await session.get(Conversation, conversation_id)
        if (
            conversation is None
            or conversation.customer_id is None
            or not conversations.bot_may_answer(conversation)
        ):
            return 0
        customer_id = conversation.customer_id
        pending = await insights.pending_notices(session, customer_id, utcnow())
    sent: list[Message] = []
    for insight in pending:
        try:
            async with sessions() as session, session.begin():
                sent.append(
                    await insights.record_notice(
                        session, insight, customer_id, conversation_id, utcnow()
                    )
                )
        except IntegrityError:
            logger.info("insight %s already told to customer %s", insight.id, customer_id)
    for message in sent:
        await announce(app, message)
    return len(sent)
