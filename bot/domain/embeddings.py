"""The local sentence-embedding model behind knowledge answers (issue #19, docs/decisions.md).

WordLlama `l2_supercat_256` (package `wordllama`, 19 MB wheel): a 32 000 x 256 float16 token
embedding table (16 MB) with its tokenizer, both inside the installed package. It is loaded
from those two files directly — `WordLlama.load()` looks for the tokenizer under a directory
name the wheel does not use and would then try to download it from Hugging Face — so loading
never touches the network. A text's embedding is the average of its tokens' vectors,
normalised: about 0.4 ms per question on this machine.

When the package cannot be imported or its files are missing, or KNOWLEDGE_EMBEDDINGS=off
(keyword answers only; bench/knowledge uses it for its baseline), `load_model()` returns None
and the knowledge base falls back to keyword retrieval (bot/domain/knowledge.py).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

MODEL_NAME = "wordllama-l2_supercat_256"
DIMENSIONS = 256
Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Embedder:
    name: str
    inference: Any
    load_seconds: float

    def embed(self, texts: list[str]) -> Vectors:
        """Unit vectors, one row per text (float32; a blank text gives zeros)."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        vectors = np.asarray(self.inference.embed(texts, norm=True), dtype=np.float32)
        return np.nan_to_num(vectors)


def model_files() -> tuple[Path, Path] | None:
    """The packaged weights and tokenizer files, or None when the package is not installed."""
    try:
        import wordllama  # type: ignore[import-untyped]
    except ImportError:
        return None
    root = Path(wordllama.__file__).parent
    weights = root / "weights" / "l2_supercat_256.safetensors"
    tokenizer = root / "tokenizers" / "l2_supercat_tokenizer_config.json"
    return (weights, tokenizer) if weights.is_file() and tokenizer.is_file() else None


@functools.cache
def load_model() -> Embedder | None:
    """The model, loaded once per process from the installed package; None if unavailable."""
    started = time.perf_counter()
    if os.environ.get("KNOWLEDGE_EMBEDDINGS", "").lower() in ("off", "0", "false", "no"):
        logger.info("KNOWLEDGE_EMBEDDINGS=off: knowledge answers use keywords only")
        return None
    files = model_files()
    if files is None:
        logger.warning("wordllama is not installed: knowledge answers use keywords only")
        return None
    try:
        from safetensors import safe_open
        from tokenizers import Tokenizer
        from wordllama.inference import WordLlamaInference  # type: ignore[import-untyped]

        weights, tokenizer_file = files
        with safe_open(str(weights), framework="np") as tensors:
            table = tensors.get_tensor("embedding.weight")
        inference = WordLlamaInference(table, Tokenizer.from_file(str(tokenizer_file)))
    except Exception:  # a broken install must not take the bot down: keywords still answer
        logger.exception("the embedding model could not be loaded: keyword answers only")
        return None
    seconds = time.perf_counter() - started
    logger.info("embedding model %s loaded in %.2f s", MODEL_NAME, seconds)
    return Embedder(MODEL_NAME, inference, seconds)


def to_bytes(vector: Vectors) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_bytes(blob: bytes) -> Vectors:
    return np.frombuffer(blob, dtype=np.float32)
