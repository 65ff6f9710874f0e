"""NLU component: the tokenizer that hides what a customer's order number or email address
looks like from the intent classifier (issue #17).

"cancel A12345" was read as something else for about one order number in six: the character
n-grams and the prefix/suffix features of "A12345" differ for every number, and the
classifier learnt from the few numbers in the training data. This tokenizer splits like
Rasa's `WhitespaceTokenizer` and then gives every token shaped like an order number or an
email address one fixed text ("ordernumber", "emailaddress"), so every number looks the same
to the featurizers. Token offsets are unchanged, and the entity extractors read the message
text, so the entities still carry the real number and address.

The shapes are configured in config.yml (`masks`: placeholder → regular expression) and must
be those of the `order_number` and `email` regexes in data/nlu/entities.yml
(tests/test_masking.py holds them equal).
"""

from __future__ import annotations

import re
from typing import Any

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message


def compile_masks(masks: dict[str, str]) -> list[tuple[str, re.Pattern[str]]]:
    return [(placeholder, re.compile(pattern)) for placeholder, pattern in masks.items()]


def masked_word(word: str, masks: list[tuple[str, re.Pattern[str]]]) -> str | None:
    """The placeholder for a token holding an order number or email address, else None."""
    for placeholder, pattern in masks:
        if pattern.search(word):
            return placeholder
    return None


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class MaskingWhitespaceTokenizer(WhitespaceTokenizer):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {**WhitespaceTokenizer.get_default_config(), "masks": {}}

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.masks = compile_masks(dict(self._config["masks"]))

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> MaskingWhitespaceTokenizer:
        return cls(config)

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        tokens: list[Token] = super().tokenize(message, attribute)
        if attribute != TEXT:
            return tokens
        for token in tokens:
            placeholder = masked_word(token.text, self.masks)
            if placeholder is not None:
                token.text = placeholder
                token.lemma = placeholder
        return tokens
