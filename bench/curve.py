"""Training curves: held-out mixture perplexity per character against fusion steps, per strategy and learning
rate, for prose-llama + code-qwen2 (a pair sharing a tokenizer, so the curve measures the fusion alone).
``braid.train.RECIPES`` takes its steps and learning rates from here.

    python bench/curve.py [--smoke-test]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.quality import evaluate, held_out_sets, mixed_train_set  # noqa: E402
from bench.report import markdown_table, write_section  # noqa: E402
from braid import BraidedLLM, ModelWrapper  # noqa: E402
from braid.config import default_fusion_layers  # noqa: E402
from braid.fusion import split_strategy  # noqa: E402
from braid.train import TrainConfig, fusion_steps, tokenize_dataset  # noqa: E402
from braid.zoo import build_zoo  # noqa: E402

PAIR = ("prose-llama", "code-qwen2")
SETTINGS = [  # (strategy, learning rate, fusion_dim)
    ("output_router", 3e-3, 16), ("output_router", 1e-2, 16), ("output_router", 3e-2, 16),
    ("pointer", 3e-3, 16), ("pointer", 1e-2, 16), ("calm", 1e-3, 16), ("calm", 3e-3, 16),
]  # fmt: skip
CHECKPOINTS = (50, 100, 200, 400, 800, 1600)


def curve(members, paths, strategy: str, lr: float, dim: int, train, sets, checkpoints) -> list[float]:
    depth = members[PAIR[0]].num_layers
    braided = BraidedLLM(
        model_configs=[paths[n] for n in PAIR], fusion_strategy=strategy, fusion_dim=dim,
        fusion_layers=default_fusion_layers(depth, 2) if split_strategy(strategy)[0] else [],
        models=[members[n] for n in PAIR],
    )  # fmt: skip
    config = TrainConfig(learning_rate=lr, batch_size=8, max_length=128, progress=False, seed=0)
    examples = tokenize_dataset(braided, train, config.max_length)
    out = []
    for step, _ in fusion_steps(braided, examples, config, max(checkpoints), random.Random(0)):
        if step + 1 in checkpoints:
            out.append(evaluate(braided, braided.tokenizer, sets)["mixture"])
            braided.train()
    return out


def run(smoke_test: bool = False, strategies: list[str] | None = None) -> list[list[str]]:
    """``strategies``: run only the SETTINGS rows of these strategies (default all)."""
    paths = build_zoo(tiny=smoke_test, progress=not smoke_test)
    members = {n: ModelWrapper(paths[n]) for n in PAIR}
    sets = held_out_sets(4 if smoke_test else 40)
    train = mixed_train_set(8 if smoke_test else 200)
    checkpoints = (1, 2) if smoke_test else CHECKPOINTS
    settings = SETTINGS[:1] if smoke_test else [s for s in SETTINGS if not strategies or s[0] in strategies]
    rows = []
    for strategy, lr, dim in settings:
        start = time.time()
        values = curve(members, paths, strategy, lr, dim, train, sets, checkpoints)
        rows.append([strategy, f"{lr:g}", str(dim), *(f"{v:.3f}" for v in values)])
        print(" | ".join(rows[-1]), f"({time.time() - start:.0f}s)", flush=True)
    best = {n: evaluate(members[n], members[n].tokenizer, sets)["mixture"] for n in PAIR}
    md = markdown_table(["strategy", "lr", "fusion_dim", *(f"{c} steps" for c in checkpoints)], rows)
    print(md)
    if not smoke_test:
        body = (
            f"Braid {'+'.join(PAIR)}; held-out mixture perplexity per character (40 texts per domain) after each "
            f"number of fusion steps (batch 8, texts cut at 128 tokens, seed 0). The members alone: "
            + ", ".join(f"{n} {v:.3f}" for n, v in best.items())
            + ". Gates train at 10x the learning rate.\n\n"
            + md
        )
        command = "python bench/curve.py" + (f" --strategies {','.join(strategies)}" if strategies else "")
        write_section("curve", "Training curves (bench/curve.py)", command, body)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke-test", action="store_true")
    parser.add_argument("--strategies", type=lambda v: v.split(","), default=None,
                        help="comma-separated strategies of SETTINGS to run (default: all rows)")  # fmt: skip
    args = parser.parse_args()
    run(smoke_test=args.smoke_test, strategies=args.strategies)
