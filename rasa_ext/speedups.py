"""Speed-ups for Rasa 3.6 that keep its behaviour exactly, installed by `python -m rasa_ext`.

Profiling `rasa run` under our conversations (py-spy, docs/benchmarks.md) showed almost half
of its CPU in `RemoteAction._validate_action_result`: it calls `jsonschema.validate`, which
re-checks the (constant) response schema against the metaschema and builds a new validator
for every action server response. Here the schema is checked and the validator built once;
each response is still validated against the same schema, and an invalid one raises the
same `ValidationError` with the same message as Rasa's own method.
"""

from __future__ import annotations

import functools
from typing import Any

from jsonschema import exceptions, validators
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL

# Rasa's text, appended to the schema error (rasa/core/actions/action.py, 3.6.21).
_MESSAGE_SUFFIX = (
    ". Failed to validate Action server response from API, "
    "make sure your response from the Action endpoint is valid. "
    f"For more information about the format visit {DOCS_BASE_URL}/custom-actions"
)


@functools.cache
def _response_validator() -> Any:
    schema = RemoteAction.action_response_format_spec()
    validator_class = validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def validate_action_result(_action: RemoteAction, result: dict[str, Any]) -> bool:
    """Drop-in for `RemoteAction._validate_action_result` with a validator built once."""
    error = exceptions.best_match(_response_validator().iter_errors(result))
    if error is not None:
        error.message += _MESSAGE_SUFFIX
        raise error
    return True


def install() -> None:
    RemoteAction._validate_action_result = validate_action_result
