"""Composition task: each member alone scores near zero; a braid must combine what two experts know.

Sixty random keys each have a 3-letter word and a digit. The letters expert learned ``key=abc.``, the digit
expert ``key=7.``, and the anchor only the composed format ``key=abc|7.`` with random values. The task is to
answer ``key=`` with ``abc|7`` for keys whose composed answers no model or fusion saw in training (fusion
trains on keys 0-39, is tested on keys 40-59). Baseline: LoRA on the anchor with as many trainable
parameters as the largest braid, trained on the same data. Every row is the mean +- sd over three seeds
(task, experts, fusion and LoRA all reseeded).

    python bench/composition.py [--seeds 3] [--smoke-test]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import markdown_table, write_section  # noqa: E402
from braid import BraidedLLM, ModelWrapper  # noqa: E402
from braid.fusion import split_strategy  # noqa: E402
from braid.train import TrainConfig, collate, train_fusion  # noqa: E402
from braid.zoo.composition import accuracy, build_models, task, training_set  # noqa: E402

# strategy -> (fusion steps, learning rate): output-level strategies converge in far fewer steps
STRATEGIES = {
    "learned_weighted": (600, 3e-3),
    "attention": (600, 3e-3),
    "router": (600, 3e-3),
    "output_router": (300, 3e-3),
    "pointer": (300, 3e-3),
}


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


def train_lora(path: str, train, rank: int, steps: int, lr: float, seed: int) -> tuple[ModelWrapper, int]:
    torch.manual_seed(seed)
    wrapper = ModelWrapper(path).freeze()
    for layer in wrapper.layers:
        attn = layer.self_attn
        attn.q_proj, attn.v_proj = LoRALinear(attn.q_proj, rank), LoRALinear(attn.v_proj, rank)
    params = [p for n, p in wrapper.named_parameters() if n.endswith((".a", ".b"))]
    opt = torch.optim.AdamW(params, lr=lr)
    examples = [(e["input_ids"], e["labels"]) for e in train]
    rng = random.Random(seed)
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


def one_seed(
    seed: int, strategies: dict[str, tuple[int, float]], expert_steps: int, lora_steps: int = 600
) -> dict[str, dict]:
    """{row name: {"params": int | None, "scores": (exact, letters, digit), "seconds": float}} for one seed."""
    torch.manual_seed(seed)
    rows = task(seed)
    seen, unseen = rows[:40], rows[40:]
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths, tok = build_models(Path(tmp), rows, expert_steps, seed)
        train = training_set(tok, seen, seed + 4)
        for name in ("anchor", "letters", "digit"):
            model = ModelWrapper(paths[name])
            scores = accuracy(lambda p, m=model: greedy(m, tok, p), unseen)
            out[f"{name} alone"] = {"params": None, "scores": scores, "seconds": 0.0}
        budget = 0
        for strategy, (steps, lr) in strategies.items():
            start = time.perf_counter()
            braided, gen = fused(list(paths.values()), strategy, steps, lr, train, seed)
            budget = max(budget, braided.num_fusion_parameters())
            scores = accuracy(gen, unseen)
            out[f"braid ({strategy})"] = {
                "params": braided.num_fusion_parameters(), "scores": scores,
                "seconds": time.perf_counter() - start,
            }  # fmt: skip
            print(f"seed {seed} {strategy}: {scores}", flush=True)
        rank = lora_rank_for(ModelWrapper(paths["anchor"]).model, budget)
        start = time.perf_counter()
        lora, n_lora = train_lora(paths["anchor"], train, rank, lora_steps, 3e-3, seed)
        scores = accuracy(lambda p: greedy(lora, tok, p), unseen)
        out[f"LoRA on anchor (rank {rank})"] = {
            "params": n_lora, "scores": scores, "seconds": time.perf_counter() - start,
        }  # fmt: skip
    return out


def fused(members: list[str], strategy: str, steps: int, lr: float, train, seed: int, new_tokens: int = 8):
    """A braid of ``members`` (the first is the anchor) trained on ``train``, and its greedy answer function.
    Hidden-state strategies fuse at anchor blocks 0 and 1; output-level ones after the last."""
    braided = BraidedLLM(
        model_configs=members, fusion_strategy=strategy, fusion_dim=32,
        fusion_layers=[0, 1] if split_strategy(strategy)[0] else [],
    )  # fmt: skip
    config = TrainConfig(max_steps=steps, learning_rate=lr, progress=False, eval_fraction=0.0, seed=seed)
    train_fusion(braided, train, config)
    return braided, lambda prompt: braided.generate(prompt, max_new_tokens=new_tokens, stop=".").strip()


def mean_sd(values: list[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.0%} ± {sd:.0%}"


def table_rows(per_seed: list[dict[str, dict]]) -> list[list[str]]:
    rows = []
    for name in per_seed[0]:
        runs = [s[name] for s in per_seed]
        params = runs[0]["params"]
        cells = [mean_sd([r["scores"][i] for r in runs]) for i in range(3)]
        seconds = statistics.fmean(r["seconds"] for r in runs)
        rows.append(
            [name, "-" if params is None else f"{params:,}", *cells, "-" if not seconds else f"{seconds:.0f}"]
        )
    return rows


def run(
    smoke_test: bool = False, tiny: bool = False, seeds: int = 3, expert_steps: int = 600
) -> list[list[str]]:
    """``tiny`` is accepted for ``braid bench``; the task trains its own small models either way."""
    strategies = {s: (3, lr) for s, (_, lr) in STRATEGIES.items()} if smoke_test else STRATEGIES
    per_seed = [
        one_seed(seed, strategies, 40 if smoke_test else expert_steps, 3 if smoke_test else 600)
        for seed in range(seeds)
    ]
    header = ["model", "trained params", "exact answer", "letters part", "digit part", "train s"]
    md = markdown_table(header, table_rows(per_seed))
    print(md)
    if not smoke_test:
        steps = ", ".join(f"{s} {n}" for s, (n, _) in STRATEGIES.items())
        body = (
            "Held-out keys 40-59 (20 keys per seed): neither the fusion nor the LoRA saw their composed answers; "
            f"the experts know their halves. Mean ± sd over {seeds} seeds (task, experts, fusion and LoRA "
            f"reseeded). Experts {expert_steps} training steps; fusion steps per strategy: {steps} (lr 3e-3, "
            "batch 8, value-only labels); LoRA 600 steps, rank matched to the largest braid; greedy answers; "
            "fusion_dim 32; hidden-state strategies at both anchor blocks, output-level ones after the last.\n\n"
            + md
        )
        write_section(
            "composition", "Composition task (bench/composition.py)",
            f"python bench/composition.py --seeds {seeds}", body,
        )  # fmt: skip
    return table_rows(per_seed)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke-test", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--expert-steps", type=int, default=600)
    args = parser.parse_args()
    run(
        smoke_test=args.smoke_test, seeds=1 if args.smoke_test else args.seeds, expert_steps=args.expert_steps
    )
