"""Composition task: each member alone scores near zero; a braid must combine what two experts know.

Sixty random keys each have a 3-letter word and a digit. The letters expert learned ``key=abc.``, the digit
expert ``key=7.``, and the anchor only the composed format ``key=abc|7.`` with random values. The task is to
answer ``key=`` with ``abc|7`` for keys whose composed answers no model or fusion saw in training (fusion
trains on keys 0-39, is tested on keys 40-59). Baseline: LoRA on the anchor with as many trainable
parameters as the braid, trained on the same data.

    python bench/composition.py [--smoke-test]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import markdown_table, write_section  # noqa: E402
from braid import BraidedLLM, ModelWrapper  # noqa: E402
from braid.train import TrainConfig, train_fusion  # noqa: E402
from braid.zoo import build_model, pretrain_lm, train_tokenizer  # noqa: E402
from braid.zoo.corpora import FactsDomain, random_word, stdlib_prose, value_labelled  # noqa: E402


def task(seed: int = 0):
    facts = FactsDomain.make(60, seed=seed)
    rng = random.Random(seed + 1)
    digits = {k: str(rng.randint(0, 9)) for k, _ in facts.facts}
    return [(k, v, digits[k]) for k, v in facts.facts]


def texts(rows, fmt, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(fmt(*rng.choice(rows), rng) for _ in range(4)) for _ in range(count)]


def build_models(root: Path, rows, steps: int):
    fmt_letters = lambda k, v, d, r: f"{k}={v}."  # noqa: E731
    fmt_digit = lambda k, v, d, r: f"{k}={d}."  # noqa: E731
    fmt_random = lambda k, v, d, r: f"{k}={random_word(r)}|{r.randint(0, 9)}."  # noqa: E731
    tok = train_tokenizer(stdlib_prose() + texts(rows, fmt_random, 300, 0), vocab_size=400)
    specs = [
        ("anchor", "llama", 48, 2, texts(rows, fmt_random, 3000, 1), steps // 2),
        ("letters", "qwen2", 64, 3, texts(rows, fmt_letters, 3000, 2), steps),
        ("digit", "gpt2", 64, 3, texts(rows, fmt_digit, 3000, 3), steps),
    ]
    paths = {}
    for name, family, hidden, layers, data, n in specs:
        model = build_model(family, len(tok), hidden=hidden, layers=layers, seed=len(name))
        pretrain_lm(model, tok, data, steps=n, lr=3e-3)
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        paths[name] = str(root / name)
    return paths, tok


def accuracy(generate, rows) -> tuple[float, float, float]:
    """Exact answers, and the letters part and digit part separately."""
    exact = letters = digit = 0
    for k, v, d in rows:
        answer = generate(f"{k}=")
        exact += answer == f"{v}|{d}"
        letters += answer.split("|")[0] == v
        digit += answer.split("|")[-1][:1] == d and "|" in answer
    n = len(rows)
    return exact / n, letters / n, digit / n


class LoRALinear(nn.Module):
    """y = W x + (alpha / r) * B A x, with B started at zero (the usual LoRA)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float = 16.0):
        super().__init__()
        self.base, self.scale = base, alpha / rank
        self.a = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.b = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.a.T @ self.b.T) * self.scale


def lora_rank_for(model: nn.Module, budget: int) -> int:
    per_rank = sum(
        m.in_features + m.out_features for n, m in model.named_modules() if n.endswith(("q_proj", "v_proj"))
    )
    return max(1, round(budget / per_rank))


def train_lora(path: str, train, rank: int, steps: int, lr: float) -> tuple[ModelWrapper, int]:
    wrapper = ModelWrapper(path).freeze()
    for layer in wrapper.layers:
        attn = layer.self_attn
        attn.q_proj, attn.v_proj = LoRALinear(attn.q_proj, rank), LoRALinear(attn.v_proj, rank)
    params = [p for n, p in wrapper.named_parameters() if n.endswith((".a", ".b"))]
    opt = torch.optim.AdamW(params, lr=lr)
    from braid.train import collate

    examples = [(e["input_ids"], e["labels"]) for e in train]
    rng = random.Random(0)
    for _ in range(steps):
        batch = collate(rng.sample(examples, 8), pad_id=wrapper.tokenizer.pad_token_id)
        loss = wrapper.model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return wrapper, sum(p.numel() for p in params)


def greedy(model, tok, prompt: str) -> str:
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    out = model.model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).split(".")[0].strip()


def run(smoke_test: bool = False, tiny: bool = False, steps: int = 600) -> list[list[str]]:
    torch.manual_seed(0)
    steps = 40 if smoke_test else steps
    rows = task()
    seen, unseen = rows[:40], rows[40:]
    with tempfile.TemporaryDirectory() as tmp:
        paths, tok = build_models(Path(tmp), rows, steps)
        fmt_true = lambda k, v, d, r: f"{k}={v}|{d}."  # noqa: E731
        train = value_labelled(tok, texts(seen, fmt_true, 400, 4))
        table = []
        for name in ("anchor", "letters", "digit"):
            model = ModelWrapper(paths[name])
            table.append(
                [
                    f"{name} alone",
                    "-",
                    *(f"{x:.0%}" for x in accuracy(lambda p, m=model: greedy(m, tok, p), unseen)),
                ]
            )
        budget = 0
        for strategy in ("learned_weighted", "attention", "router"):
            braided = BraidedLLM(
                model_configs=[paths["anchor"], paths["letters"], paths["digit"]], fusion_strategy=strategy,
                fusion_layers=[0, 1], fusion_dim=32,
            )  # fmt: skip
            train_fusion(
                braided,
                train,
                TrainConfig(max_steps=steps, learning_rate=3e-3, progress=False, eval_fraction=0.0),
            )
            gen = lambda p, b=braided: b.generate(p, max_new_tokens=8, stop=".").strip()  # noqa: E731
            budget = max(budget, braided.num_fusion_parameters())
            table.append(
                [
                    f"braid ({strategy})",
                    f"{braided.num_fusion_parameters():,}",
                    *(f"{x:.0%}" for x in accuracy(gen, unseen)),
                ]
            )
            print(" | ".join(table[-1]), flush=True)
        rank = lora_rank_for(ModelWrapper(paths["anchor"]).model, budget)
        lora, n_lora = train_lora(paths["anchor"], train, rank, steps, 3e-3)
        table.append(
            [
                f"LoRA on anchor (rank {rank})",
                f"{n_lora:,}",
                *(f"{x:.0%}" for x in accuracy(lambda p: greedy(lora, tok, p), unseen)),
            ]
        )
    header = ["model", "trained params", "exact answer", "letters part", "digit part"]
    md = markdown_table(header, table)
    print(md)
    if not smoke_test:
        body = (
            "Held-out keys 40-59 (20 keys): neither the fusion nor the LoRA saw their composed answers; the "
            f"experts know their halves. {steps} training steps (experts), {steps} fusion / LoRA steps, lr 3e-3, "
            "batch 8, value-only labels; greedy answers; fusion_dim 32 at both anchor blocks.\n\n" + md
        )
        write_section(
            "composition", "Composition task (bench/composition.py)", "python bench/composition.py", body
        )
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke-test", action="store_true")
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()
    run(smoke_test=args.smoke_test, steps=args.steps)
