"""Issue #24: Rasa's channel (rasa_ext/channels.py) returns what the NLU made of the turn,
read from the tracker's events (checked in the rasa environment via a subprocess), and the
web service's client reads it from the reply list."""

from __future__ import annotations

import json

from bot.web.rasa_client import _nlu
from tests.test_rasa_ext import _rasa_python

UNDERSTOOD_CHECK = """
import json
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa_ext.channels import understood

def user(text, intent, confidence, ranking, entities=()):
    return UserUttered(text, {"name": intent, "confidence": confidence},
                       list(entities), parse_data={
        "intent": {"name": intent, "confidence": confidence},
        "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking],
        "entities": list(entities), "text": text})

events = [
    ActionExecuted("action_listen"),
    user("hi", "greet", 0.99, [("greet", 0.99), ("thank", 0.01)]),
    ActionExecuted("utter_greet"), BotUttered("Hello!", metadata={"utter_action": "utter_greet"}),
    ActionExecuted("action_listen"),
    user("my thingy A12345", "nlu_fallback", 0.45, [("nlu_fallback", 0.45), ("delivery_problem", 0.41), ("order_status", 0.3)],
         [{"entity": "order_number", "value": "A12345", "start": 9, "end": 15, "extractor": "RegexEntityExtractor"}]),
    ActionExecuted("action_handle_fallback"),
    BotUttered("Did you mean...", metadata={"utter_action": "utter_fallback_choices"}),
    SlotSet("x", 1),
    ActionExecuted("action_listen"),
]
two = events + [user("cancel it", "cancel_order", 0.9, [("cancel_order", 0.9)]), ActionExecuted("action_listen"),
                user("and refund", "request_refund", 0.8, [("request_refund", 0.8), ("refund_status", 0.1)]),
                ActionExecuted("utter_x"), BotUttered("x", metadata={"utter_action": "utter_x"})]
print(json.dumps([understood(events), understood(two, 2), understood([ActionExecuted("action_listen")])]))
"""


def test_the_channel_reports_the_turns_nlu_result_from_the_tracker() -> None:
    result = _rasa_python("-c", UNDERSTOOD_CHECK)
    assert result.returncode == 0, result.stderr[-3000:]
    last, compound, nothing = json.loads(result.stdout.strip().splitlines()[-1])
    assert last == {
        "intent": "nlu_fallback",
        "confidence": 0.45,
        "runner_up": "delivery_problem",
        "runner_up_confidence": 0.41,
        "entities": [{"entity": "order_number", "value": "A12345", "start": 9, "end": 15}],
        "steps": ["action_handle_fallback", "utter_fallback_choices"],
    }
    # A message sent as two turns: the first part's reading, the steps of both.
    assert (compound["intent"], compound["runner_up"]) == ("cancel_order", None)
    assert compound["steps"] == ["utter_x"]
    assert nothing is None


MODEL_ID_CHECK = """
import asyncio, json
from rasa.shared.core.events import ActionExecuted, UserUttered
from rasa_ext.channels import _understood

class Tracker:
    events = [UserUttered("hi", {"name": "greet", "confidence": 0.9},
                          parse_data={"intent": {"name": "greet", "confidence": 0.9}}),
              ActionExecuted("action_listen")]

class Store:
    async def retrieve(self, sender_id):
        return Tracker()

class Agent:
    tracker_store = Store()
    model_id = "5f0c2a9e1b7d4c3f8e6a0b1c2d3e4f5a"

class NoModel:
    tracker_store = Store()

print(json.dumps([asyncio.run(_understood(Agent(), "s", 1))["model_id"],
                  asyncio.run(_understood(NoModel(), "s", 1))["model_id"]]))
"""


def test_the_channel_reports_the_loaded_models_id() -> None:
    """The before/after view around a retraining: each turn's model."""
    result = _rasa_python("-c", MODEL_ID_CHECK)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        "5f0c2a9e1b7d4c3f8e6a0b1c2d3e4f5a",
        None,
    ]


def test_the_client_reads_the_nlu_item_and_ignores_it_as_a_reply() -> None:
    nlu = {"intent": "greet", "confidence": 0.9}
    assert (
        _nlu([{"recipient_id": "s", "text": "Hi"}, {"recipient_id": "s", "custom": {"nlu": nlu}}])
        == nlu
    )
    assert _nlu([{"recipient_id": "s", "text": "Hi"}, {"custom": {"other": 1}}, "junk"]) is None
