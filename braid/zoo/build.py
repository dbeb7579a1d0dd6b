"""The zoo: small specialist LMs trained here, deterministic and cached, each with a model card.

``build_zoo(tiny=True)`` takes under a minute on two cores; the full zoo about ten (BENCHMARKS.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.table import Table

from braid.zoo.architectures import build_model
from braid.zoo.domains import get_domain
from braid.zoo.evaluate import char_perplexity
from braid.zoo.pretrain import pretrain_lm
from braid.zoo.tokenizers import train_tokenizer

ZOO_VERSION = 2


class TokenizerSpec(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: Literal["bpe", "wordpiece", "unigram"]
    vocab_size: int
    domains: tuple[str, ...]


class MemberSpec(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    domain: str
    family: str
    tokenizer: str
    hidden: int
    layers: int
    steps: int
    lr: float = 3e-3
    batch_size: int = 16
    max_length: int = 128


class ZooSpec(BaseModel):
    model_config = ConfigDict(frozen=True)
    tokenizers: dict[str, TokenizerSpec]
    members: tuple[MemberSpec, ...]

    def member(self, name: str) -> MemberSpec:
        return next(m for m in self.members if m.name == name)


def zoo_spec(tiny: bool = False) -> ZooSpec:
    scale = (lambda h: max(32, h // 4)) if tiny else (lambda h: h)
    steps = 150 if tiny else 1200
    tokenizers = {
        "en-bpe": TokenizerSpec(kind="bpe", vocab_size=512 if tiny else 2048, domains=("prose", "code")),
        "arith-unigram": TokenizerSpec(
            kind="unigram", vocab_size=64 if tiny else 128, domains=("arithmetic",)
        ),
        "facts-wordpiece": TokenizerSpec(
            kind="wordpiece", vocab_size=256 if tiny else 512, domains=("facts",)
        ),
    }
    members = (
        MemberSpec(name="prose-llama", domain="prose", family="llama", tokenizer="en-bpe", hidden=scale(160), layers=2 if tiny else 4, steps=steps),
        MemberSpec(name="code-qwen2", domain="code", family="qwen2", tokenizer="en-bpe", hidden=scale(128), layers=2 if tiny else 4, steps=steps),
        MemberSpec(name="arith-gpt2", domain="arithmetic", family="gpt2", tokenizer="arith-unigram", hidden=scale(128), layers=2 if tiny else 3, steps=steps),
        MemberSpec(name="facts-mistral", domain="facts", family="mistral", tokenizer="facts-wordpiece", hidden=scale(96), layers=2 if tiny else 3, steps=steps),
    )  # fmt: skip
    return ZooSpec(tokenizers=tokenizers, members=members)


def zoo_dir(tiny: bool = False, cache_dir: str | Path | None = None) -> Path:
    from braid.paths import cache_dir as default_cache

    base = Path(cache_dir) if cache_dir else default_cache()
    return base / f"zoo-v{ZOO_VERSION}-{'tiny' if tiny else 'full'}"


def _key(spec: BaseModel, seed: int) -> str:
    return hashlib.sha256(f"{spec.model_dump_json()}|{seed}|{ZOO_VERSION}".encode()).hexdigest()[:16]


def build_zoo(
    tiny: bool = False, cache_dir: str | Path | None = None, seed: int = 0, progress: bool = True
) -> dict[str, str]:
    """Train (or reuse from the cache) every zoo member; returns {name: directory}."""
    spec, root = zoo_spec(tiny), zoo_dir(tiny, cache_dir)
    console = Console(quiet=not progress)
    paths = {}
    tokenizers: dict[str, object] = {}
    for member in spec.members:
        path = root / member.name
        paths[member.name] = str(path)
        card = path / "card.json"
        if card.exists() and json.loads(card.read_text()).get("key") == _key(member, seed):
            continue
        if member.tokenizer not in tokenizers:
            tokenizers[member.tokenizer] = _train_tokenizer(spec.tokenizers[member.tokenizer], seed)
        console.print(
            f"zoo: training {member.name} ({member.family}, {member.hidden}x{member.layers}) on {member.domain}"
        )
        _train_member(member, tokenizers[member.tokenizer], path, seed, progress)
    return paths


def _train_tokenizer(spec: TokenizerSpec, seed: int):
    texts = [t for d in spec.domains for t in get_domain(d, seed).train]
    return train_tokenizer(texts, vocab_size=spec.vocab_size, kind=spec.kind)


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Deterministic kernels while a member trains; with the fixed seeds, data order and tokenizer ids,
    a rebuild on the same machine (same torch thread count) gives the same bits."""
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)


def _train_member(member: MemberSpec, tokenizer, path: Path, seed: int, progress: bool) -> None:
    data = get_domain(member.domain, seed)
    model = build_model(member.family, len(tokenizer), seed=seed, hidden=member.hidden, layers=member.layers)
    with deterministic():
        losses = pretrain_lm(
            model, tokenizer, data.train, steps=member.steps, lr=member.lr, batch_size=member.batch_size,
            max_length=member.max_length, seed=seed, progress=progress,
        )  # fmt: skip
    model.eval()
    held = data.held_out[:200]
    char_ppl = char_perplexity(
        lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits, tokenizer, held
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    card = {
        "name": member.name, "domain": member.domain, "data": data.description, "family": member.family,
        "tokenizer": member.tokenizer, "vocab_size": len(tokenizer), "hidden": member.hidden,
        "layers": member.layers, "parameters": sum(p.numel() for p in model.parameters()),
        "train_steps": member.steps, "final_train_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4),
        "held_out_char_perplexity": round(char_ppl, 4), "held_out_bits_per_char": round(math.log2(char_ppl), 4),
        "seed": seed, "torch_threads": torch.get_num_threads(), "key": _key(member, seed),
    }  # fmt: skip
    (path / "card.json").write_text(json.dumps(card, indent=1))
    (path / "README.md").write_text(_card_markdown(card))


def _card_markdown(card: dict) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in card.items() if k != "key")
    return f"# {card['name']}\n\nA small {card['family']} model trained here on {card['data']}.\n\n| field | value |\n|---|---|\n{rows}\n"


def load_cards(tiny: bool = False, cache_dir: str | Path | None = None) -> list[dict]:
    root = zoo_dir(tiny, cache_dir)
    return [
        json.loads((root / m.name / "card.json").read_text())
        for m in zoo_spec(tiny).members
        if (root / m.name / "card.json").exists()
    ]


def cards_table(cards: list[dict]) -> Table:
    table = Table(title="zoo")
    table.add_column("name", no_wrap=True)
    for col in ("family", "domain", "tokenizer", "params", "train loss", "held-out char ppl"):
        table.add_column(col)
    for c in cards:
        table.add_row(
            c["name"],
            c["family"],
            c["domain"],
            c["tokenizer"],
            f"{c['parameters']:,}",
            f"{c['final_train_loss']:.3f}",
            f"{c['held_out_char_perplexity']:.3f}",
        )
    return table
