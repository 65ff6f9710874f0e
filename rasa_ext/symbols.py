"""NLU component: a message without a letter or a digit ("?", "!!!", "👍🙂") is not
understood, whatever the classifier guessed from its characters (issue #17).

It runs after `FallbackClassifier` (config.yml) and sets the intent to `nlu_fallback` with
full confidence; the intent ranking is kept. The bot's fallback action answers such a
message with a friendly prompt (actions/handoff.py). Survey forms still read star ratings
("⭐⭐⭐⭐") from the text: a form takes its answer before any fallback rule.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message


def has_words(text: str) -> bool:
    """Whether the text holds at least one letter or digit (in any script)."""
    return any(ch.isalnum() for ch in text)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class SymbolsOnlyFallback(GraphComponent, IntentClassifier):
    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SymbolsOnlyFallback:
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            if isinstance(text, str) and text.strip() and not has_words(text):
                message.set(
                    INTENT,
                    {
                        INTENT_NAME_KEY: DEFAULT_NLU_FALLBACK_INTENT_NAME,
                        PREDICTED_CONFIDENCE_KEY: 1.0,
                    },
                    add_to_output=True,
                )
        return messages
