"""Text that exists offline: a synthetic key=value facts domain with value-only labels.

The facts domain is a composition probe: a model trained on the facts knows them, one trained on the
format with random values knows only the format, and a braid must read the former to beat the latter.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass


def random_word(rng: random.Random, n: int = 3) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))


@dataclass(frozen=True)
class FactsDomain:
    """``n`` random key -> value facts, rendered as lines of ``key=value.`` statements."""

    facts: tuple[tuple[str, str], ...]

    @classmethod
    def make(cls, n: int = 60, seed: int = 0) -> FactsDomain:
        rng = random.Random(seed)
        keys: set[str] = set()
        while len(keys) < n:
            keys.add(random_word(rng))
        return cls(tuple((k, random_word(rng)) for k in sorted(keys)))

    def texts(self, count: int, per_text: int = 4, seed: int = 0, subset: slice = slice(None)) -> list[str]:
        """``count`` texts of ``per_text`` facts drawn from ``facts[subset]``."""
        rng = random.Random(seed)
        pool = self.facts[subset]
        return [" ".join(f"{k}={v}." for k, v in rng.sample(pool, per_text)) for _ in range(count)]

    def format_texts(self, count: int, per_text: int = 4, seed: int = 0) -> list[str]:
        """Same format and keys, fresh random values: teaches the format without the facts."""
        rng = random.Random(seed)
        return [
            " ".join(f"{k}={random_word(rng)}." for k, _ in rng.sample(self.facts, per_text))
            for _ in range(count)
        ]


def value_labelled(tokenizer, texts: list[str]) -> list[dict[str, list[int]]]:
    """Examples whose labels keep only the tokens after '=' up to '.', the part only a fact-holder knows."""
    out = []
    for text in texts:
        enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
        inside = _value_spans(text)
        labels = [
            tok if any(a <= s < b for a, b in inside) else -100
            for tok, (s, _) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
        ]
        out.append({"input_ids": enc["input_ids"], "labels": labels})
    return out


def _value_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], None
    for i, ch in enumerate(text):
        if ch == "=":
            start = i + 1
        elif ch == "." and start is not None:
            spans.append((start, i + 1))
            start = None
    return spans


PROSE_MODULES = ("json", "os", "re", "collections", "functools", "itertools", "pathlib", "textwrap", "string")


def stdlib_prose(min_words: int = 6) -> list[str]:
    """English sentences from the docstrings of a fixed set of standard-library modules (offline, stable)."""
    import importlib
    import inspect

    lines: list[str] = []
    for name in PROSE_MODULES:
        module = importlib.import_module(name)
        for _, obj in sorted(vars(module).items()):
            doc = inspect.getdoc(obj) if (inspect.isfunction(obj) or inspect.isclass(obj)) else None
            for para in (doc or "").split("\n\n"):
                text = " ".join(para.split())
                letters = sum(c.isalpha() or c == " " for c in text)
                if len(text.split()) >= min_words and text.isascii() and letters >= 0.85 * len(text):
                    lines.append(text)
    return sorted(set(lines))
