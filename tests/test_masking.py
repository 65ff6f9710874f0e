"""The NLU tokenizer that hides order numbers and email addresses from the intent classifier
(rasa_ext/masking.py, issue #17)."""

from __future__ import annotations

import os
import subprocess

import yaml

from bot.config import PROJECT_ROOT


def _entity_regexes() -> dict[str, str]:
    data = yaml.safe_load((PROJECT_ROOT / "data" / "nlu" / "entities.yml").read_text())
    found = {}
    for item in data["nlu"]:
        if "regex" in item:
            lines = [line.strip() for line in item["examples"].splitlines() if line.strip()]
            found[item["regex"]] = lines[0].removeprefix("- ")
    return found


def _masks() -> dict[str, str]:
    config = yaml.safe_load((PROJECT_ROOT / "config.yml").read_text())
    (tokenizer,) = [c for c in config["pipeline"] if c["name"].endswith("Tokenizer")]
    assert tokenizer["name"] == "rasa_ext.masking.MaskingWhitespaceTokenizer"
    return dict(tokenizer["masks"])


def test_the_masks_are_the_entity_shapes_of_the_training_data() -> None:
    regexes = _entity_regexes()
    assert _masks() == {
        "ordernumber": regexes["order_number"],
        "emailaddress": regexes["email"],
    }


MASKING_CHECK = """
import yaml
from rasa.shared.nlu.training_data.message import Message
from rasa_ext.masking import MaskingWhitespaceTokenizer

config = yaml.safe_load(open("config.yml"))["pipeline"][0]
tokenizer = MaskingWhitespaceTokenizer({**MaskingWhitespaceTokenizer.get_default_config(), **config})
for text in ["cancel A12345 pls", "where is #10023?", "a99999 and a.b@web.de", "call 10023"]:
    message = Message(data={"text": text})
    tokens = tokenizer.tokenize(message, "text")
    print([(t.text, t.lemma, text[t.start:t.end]) for t in tokens])
"""


def test_order_numbers_and_emails_reach_the_featurizers_as_one_word() -> None:
    done = subprocess.run(
        [str(PROJECT_ROOT / ".venv-rasa" / "bin" / "python"), "-c", MASKING_CHECK],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()[-4:]
    assert lines == [
        str(
            [
                ("cancel", "cancel", "cancel"),
                ("ordernumber", "ordernumber", "A12345"),
                ("pls", "pls", "pls"),
            ]
        ),
        str(
            [
                ("where", "where", "where"),
                ("is", "is", "is"),
                ("ordernumber", "ordernumber", "#10023"),
            ]
        ),
        str(
            [
                ("ordernumber", "ordernumber", "a99999"),
                ("and", "and", "and"),
                ("emailaddress", "emailaddress", "a.b@web.de"),
            ]
        ),
        # a bare five-digit number may be a postcode: not masked, as in entities.yml
        str([("call", "call", "call"), ("10023", "10023", "10023")]),
    ]
