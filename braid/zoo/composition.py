"""The zoo's composition probe: a question no single member can answer, in the facts domain's format.

Sixty random keys each have a 3-letter word and a digit. The letters expert learned ``key=abc.``, the digit
expert ``key=7.``, and the anchor only the composed format ``key=abc|7.`` with random values. Answering
``key=`` with ``abc|7`` for a key whose composed answer no model saw needs the braid to read both experts
at test time (bench/composition.py, the demo).
"""

from __future__ import annotations

import random
from pathlib import Path

from braid.zoo.architectures import build_model
from braid.zoo.corpora import FactsDomain, random_word, stdlib_prose, value_labelled
from braid.zoo.pretrain import pretrain_lm
from braid.zoo.tokenizers import train_tokenizer

Row = tuple[str, str, str]  # key, 3-letter word, digit


def task(seed: int = 0) -> list[Row]:
    facts = FactsDomain.make(60, seed=seed)
    rng = random.Random(seed + 1)
    digits = {k: str(rng.randint(0, 9)) for k, _ in facts.facts}
    return [(k, v, digits[k]) for k, v in facts.facts]


def texts(rows: list[Row], fmt, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(fmt(*rng.choice(rows), rng) for _ in range(4)) for _ in range(count)]


def letters_line(k: str, v: str, d: str, rng: random.Random) -> str:
    return f"{k}={v}."


def digit_line(k: str, v: str, d: str, rng: random.Random) -> str:
    return f"{k}={d}."


def format_line(k: str, v: str, d: str, rng: random.Random) -> str:
    """The composed format with random values: what the anchor knows."""
    return f"{k}={random_word(rng)}|{rng.randint(0, 9)}."


def composed_line(k: str, v: str, d: str, rng: random.Random) -> str:
    return f"{k}={v}|{d}."


def build_models(root: Path, rows: list[Row], steps: int, seed: int = 0) -> tuple[dict[str, str], object]:
    """Train the anchor, the letters expert and the digit expert (one shared tokenizer) under ``root``."""
    tok = train_tokenizer(stdlib_prose() + texts(rows, format_line, 300, seed), vocab_size=400)
    specs = [
        ("anchor", "llama", 48, 2, texts(rows, format_line, 3000, seed + 1), steps // 2),
        ("letters", "qwen2", 64, 3, texts(rows, letters_line, 3000, seed + 2), steps),
        ("digit", "gpt2", 64, 3, texts(rows, digit_line, 3000, seed + 3), steps),
    ]
    return train_models(root, tok, specs, seed), tok


def train_models(root: Path, tok, specs: list[tuple], seed: int) -> dict[str, str]:
    """(name, family, hidden, layers, texts, steps) -> a model trained on ``texts`` and saved with ``tok``
    under ``root / name``; returns {name: directory}."""
    paths = {}
    for name, family, hidden, layers, data, n in specs:
        model = build_model(family, len(tok), hidden=hidden, layers=layers, seed=len(name) + 100 * seed)
        pretrain_lm(model, tok, data, steps=n, lr=3e-3, seed=seed)
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        paths[name] = str(root / name)
    return paths


def training_set(tok, rows: list[Row], seed: int, count: int = 400) -> list[dict[str, list[int]]]:
    """Composed answers for ``rows`` with value-only labels (the fusion's training data)."""
    return value_labelled(tok, texts(rows, composed_line, count, seed))


def accuracy(generate, rows: list[Row]) -> tuple[float, float, float]:
    """Exact answers, and the letters part and digit part separately."""
    exact = letters = digit = 0
    for k, v, d in rows:
        answer = generate(f"{k}=")
        exact += answer == f"{v}|{d}"
        letters += answer.split("|")[0] == v
        digit += answer.split("|")[-1][:1] == d and "|" in answer
    n = len(rows)
    return exact / n, letters / n, digit / n
