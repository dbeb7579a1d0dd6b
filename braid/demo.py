"""`make demo` / `braid demo`: two small models trained here, braided, trained briefly, generating.

The anchor reads English and knows the ``key=value.`` format but none of the facts; the expert memorised
60 facts. The braid trains its fusion on 40 facts and is asked about the other 20, which neither the anchor
nor the fusion has seen: only reading the expert can answer them.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from braid.braided import BraidedLLM
from braid.train import TrainConfig, evaluate, tokenize_dataset, train_fusion
from braid.zoo import build_model, pretrain_lm, train_tokenizer
from braid.zoo.corpora import FactsDomain, stdlib_prose, value_labelled

DEMO_VERSION = "2"


def cache_dir() -> Path:
    from braid.paths import cache_dir as root

    base = root()
    return base / f"demo-v{DEMO_VERSION}"


def build_members(console: Console, domain: FactsDomain) -> list[str]:
    """Train (or reuse) the anchor and the expert; returns their directories."""
    root = cache_dir()
    paths = [root / "anchor-llama", root / "expert-qwen2"]
    if all((p / "config.json").exists() for p in paths):
        console.print(f"reusing members in {root}")
        return [str(p) for p in paths]
    prose = stdlib_prose()
    tok = train_tokenizer(prose + domain.format_texts(200), vocab_size=512)
    specs = [
        (
            "anchor: English + fact format",
            "llama",
            96,
            2,
            prose + domain.format_texts(len(prose), seed=1),
            500,
        ),
        ("expert: the 60 facts", "qwen2", 64, 3, domain.texts(2000, seed=1), 600),
    ]
    for path, (label, family, hidden, layers, texts, steps) in zip(paths, specs, strict=True):
        console.print(f"training {label} ({family}, hidden {hidden}, {layers} layers, {steps} steps)")
        model = build_model(family, len(tok), hidden=hidden, layers=layers, seed=len(str(path)))
        pretrain_lm(model, tok, texts, steps=steps, lr=3e-3, progress=True)
        model.save_pretrained(path)
        tok.save_pretrained(path)
    return [str(p) for p in paths]


def answer(braided: BraidedLLM, key: str) -> str:
    return braided.generate(f"{key}=", max_new_tokens=6, stop=".").strip()


def main(steps: int = 200, strategy: str = "attention") -> dict[str, float]:
    console = Console()
    start = time.time()
    torch.manual_seed(0)
    domain = FactsDomain.make(60, seed=0)
    anchor, expert = build_members(console, domain)
    braided = BraidedLLM(
        model_configs=[{"model_name": anchor, "role": "reader"}, {"model_name": expert, "role": "facts"}],
        fusion_strategy=strategy,
        fusion_layers=[0, 1],
        fusion_dim=32,
    )
    tok = braided.tokenizer
    train = value_labelled(tok, domain.texts(400, seed=3, subset=slice(0, 40)))
    held_out = value_labelled(tok, domain.texts(100, seed=4, subset=slice(40, 60)))
    held = tokenize_dataset(braided, held_out, 128)
    unseen = domain.facts[40:60]
    before_loss = evaluate(braided, held, 16, tok.pad_token_id)
    before_acc = sum(answer(braided, k) == v for k, v in unseen) / len(unseen)
    console.print(
        f"braid: {strategy}, {braided.num_fusion_parameters():,} fusion parameters; training {steps} steps"
    )
    train_fusion(braided, train, TrainConfig(max_steps=steps, learning_rate=3e-3), eval_dataset=held_out)
    after_loss = evaluate(braided, held, 16, tok.pad_token_id)
    answers = [(k, v, answer(braided, k)) for k, v in unseen]
    after_acc = sum(a == v for _, v, a in answers) / len(answers)

    table = Table(title="held-out facts (never seen by the anchor or the fusion)")
    for col in ("", "value loss", "exact answers"):
        table.add_column(col)
    table.add_row("anchor alone (= untrained braid)", f"{before_loss:.3f}", f"{before_acc:.0%}")
    table.add_row(f"trained braid ({steps} steps)", f"{after_loss:.3f}", f"{after_acc:.0%}")
    console.print(table)
    samples = Table(title="generation: '<key>=' -> value")
    for col in ("key", "true value", "braid says"):
        samples.add_column(col)
    for k, v, a in answers[:6]:
        samples.add_row(k, v, a)
    console.print(samples)
    (k1, v1), (k2, _), (k3, _) = unseen[:3]
    prompt = f"{k1}={v1}. {k2}="
    console.print(f"streaming: {prompt}", end="")
    for piece in braided.generate(prompt, max_new_tokens=12, stream=True, stop=f" {k3}"):
        console.print(piece, end="")
    console.print(f"\ndone in {time.time() - start:.0f}s")
    return {
        "before_loss": before_loss,
        "after_loss": after_loss,
        "before_acc": before_acc,
        "after_acc": after_acc,
    }


if __name__ == "__main__":
    main()
