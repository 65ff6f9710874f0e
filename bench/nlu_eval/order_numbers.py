"""Order-number robustness of the intent classifier: the same messages with other order numbers.

    .venv-rasa/bin/python -m bench.nlu_eval.order_numbers [--model PATH] [--numbers 20]

Fills every template of `order_numbers_heldout.yml` (held-out: never trained on) with the
same `--numbers` random order numbers in the shop's shapes (A12345, a12345, #12345; fixed
seed, so two models are compared on the same messages) and parses each message with the
trained model. Prints, as JSON: accuracy over all filled messages (`nlu_fallback` counts as
wrong), the share of templates whose intent never changed with the number ("stable"), and
the share of messages whose intent differs from the template's most common prediction
("swayed"). The number in a message must not decide what the customer wants.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
HELDOUT = ROOT / "bench" / "nlu_eval" / "order_numbers_heldout.yml"


def order_numbers(count: int, seed: int = 20261207) -> list[str]:
    rng = random.Random(seed)
    shapes = ("A{}", "a{}", "#{}")
    return [shapes[i % 3].format(rng.randint(10000, 99999)) for i in range(count)]


def latest_model() -> Path:
    models = sorted((ROOT / "models").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        sys.exit("no trained model in models/: run `make train` first")
    return models[-1]


async def measure(model: Path, numbers: list[str]) -> dict[str, Any]:
    import logging

    # Run with the Rasa venv's python; mypy checks this file in the app venv, without Rasa.
    import structlog  # type: ignore[import-not-found]
    from rasa.core.agent import Agent

    # Quiet: the held-out messages and their predictions are never printed one by one.
    logging.getLogger().setLevel(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    agent = Agent.load(str(model))
    templates: dict[str, list[str]] = yaml.safe_load(HELDOUT.read_text())["templates"]
    correct = total = stable = swayed = 0
    per_intent: dict[str, list[int]] = {}
    for intent, texts in templates.items():
        for template in texts:
            predicted = []
            for number in numbers:
                parsed = await agent.parse_message(template.format(order=number))
                predicted.append(parsed["intent"]["name"])
            hits = sum(p == intent for p in predicted)
            correct += hits
            total += len(predicted)
            per_intent.setdefault(intent, [0, 0])
            per_intent[intent][0] += hits
            per_intent[intent][1] += len(predicted)
            _most_common, count = Counter(predicted).most_common(1)[0]
            stable += count == len(predicted)
            swayed += len(predicted) - count
    template_count = sum(len(texts) for texts in templates.values())
    return {
        "model": model.name,
        "templates": template_count,
        "messages": total,
        "accuracy": round(correct / total, 3),
        "stable_templates": round(stable / template_count, 3),
        "swayed_messages": round(swayed / total, 3),
        "accuracy_by_intent": {k: round(v[0] / v[1], 2) for k, v in sorted(per_intent.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--numbers", type=int, default=20)
    args = parser.parse_args()
    model = args.model or latest_model()
    print(json.dumps(asyncio.run(measure(model, order_numbers(args.numbers))), indent=2))


if __name__ == "__main__":
    main()
