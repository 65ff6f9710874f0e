"""Complaints and praise typed freely in the chat."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from sqlalchemy.ext.asyncio import AsyncSession

from actions.services import DomainAction, get_services, latest_intent, latest_text
from bot.domain import chat, understanding
from bot.domain.enums import FeedbackKind


class ActionRecordOpinion(DomainAction, Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_record_opinion"

    async def turn(self, session: AsyncSession, tracker: Tracker) -> chat.Turn:
        text = latest_text(tracker)
        about_the_shop = chat.about_the_shop(text, get_services().settings)
        if about_the_shop is not None and understanding.reads_as_ask(text):
            # "what are your opening hours for phone support" (complain 0.99: testers 4 and
            # 7, tw4_36, tw7_10): the team's hours, not a complaint recorded; "you never
            # answer the phone" is still a complaint
            return about_the_shop
        kind = FeedbackKind.praise if latest_intent(tracker) == "praise" else FeedbackKind.complaint
        message_id = str(tracker.latest_message.get("message_id") or len(tracker.events))
        return await chat.record_opinion(
            session,
            tracker.sender_id,
            kind,
            latest_text(tracker),
            message_id,
            open_request=tracker.get_slot("support_request")
            if answered_a_request(tracker)
            else None,
            settings=get_services().settings,
        )


ANSWERING_ACTIONS = frozenset({"action_support_request", "action_resolve_pending"})


def answered_a_request(tracker: Tracker) -> bool:
    """Whether the bot's turn just before the latest message answered a support request."""
    seen_user = False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            if seen_user:
                return False
            seen_user = True
        elif seen_user and event.get("event") == "action":
            name = event.get("name")
            if name in ANSWERING_ACTIONS:
                return True
            if name != "action_listen":
                return False
    return False
