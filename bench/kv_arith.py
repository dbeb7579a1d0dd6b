"""KV-arithmetic (CALM's key-value arithmetic): the anchor adds two values that only a member knows.

Sixty random keys each have a two-digit value (10-49). The values expert learned ``key=37.``; the anchor
learned sums of such numbers (``23+41=64.``) and the format ``key+key=<number>.`` with random numbers, so it
can add but does not know a single value. Two digits, not one, so that a part reading no key scores near
0 (a sum takes 79 values, the likeliest ~3% of the time) rather than at a one-digit sum's ~10% floor, and
the values expert's own answer (one value) is never the sum. The anchor pretrains 3000 steps: at 1200 it
added two such numbers right 28 times in 100 (84 at 3000), which capped every braid. Answering ``abc+def=`` needs the anchor to compute on what the member knows: output mixing
cannot do it (no member ever predicts a sum), hidden-state fusion into the anchor's early blocks can.
Fusion trains on keys 0-39 and is tested on pairs of keys 40-59. Mean +- sd over seeds.

    python bench/kv_arith.py [--seeds 3] [--smoke-test]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.composition import fused, greedy, lora_rank_for, mean_sd, train_lora  # noqa: E402
from bench.report import markdown_table, write_section  # noqa: E402
from braid import ModelWrapper  # noqa: E402
from braid.zoo import train_tokenizer  # noqa: E402
from braid.zoo.composition import train_models  # noqa: E402
from braid.zoo.corpora import FactsDomain, stdlib_prose, value_labelled  # noqa: E402

STRATEGIES = {"calm": (800, 3e-3), "attention": (800, 3e-3), "pointer": (300, 3e-3)}


VALUES = range(10, 50)


def task(seed: int) -> list[tuple[str, int]]:
    keys = [k for k, _ in FactsDomain.make(60, seed=seed).facts]
    rng = random.Random(seed + 7)
    return [(k, rng.choice(VALUES)) for k in keys]


def lines(make, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(make(rng) for _ in range(4)) for _ in range(count)]


def number_sum(rng: random.Random) -> str:
    a, b = rng.choice(VALUES), rng.choice(VALUES)
    return f"{a}+{b}={a + b}."


def composed(rows, rng: random.Random, known: bool) -> str:
    """``key+key=sum.``: the true sum of their values, or (``known=False``) a random one (the format)."""
    (a, va), (b, vb) = rng.choice(rows), rng.choice(rows)
    total = va + vb if known else rng.choice(VALUES) + rng.choice(VALUES)
    return f"{a}+{b}={total}."


def build_models(root: Path, rows, steps: int, seed: int) -> tuple[dict[str, str], object]:
    values = lambda r: "{}={}.".format(*r.choice(rows))  # noqa: E731
    shape = lambda r: composed(rows, r, known=False)  # noqa: E731
    tok = train_tokenizer(
        stdlib_prose() + lines(shape, 300, seed) + lines(number_sum, 300, seed), vocab_size=400
    )
    specs = [
        ("anchor", "llama", 64, 4, lines(number_sum, 2000, seed + 1) + lines(shape, 2000, seed + 2), steps),
        ("values", "qwen2", 64, 3, lines(values, 3000, seed + 3), steps),
    ]
    return train_models(root, tok, specs, seed), tok


def held_out_pairs(rows) -> list:
    """Every ordered pair of distinct held-out keys (380 for 20 keys): one answer is 0.3%, not 2.5%."""
    return [(a, b) for a in rows for b in rows if a != b]


def accuracy(generate, rows) -> float:
    """Exact sums over the test pairs."""
    pairs = held_out_pairs(rows)
    return sum(generate(f"{a}+{b}=") == str(va + vb) for (a, va), (b, vb) in pairs) / len(pairs)


def chance(seen, unseen) -> float:
    """What a part that reads no key can reach: the commonest sum over pairs of training keys, scored on
    the test pairs."""
    guess = Counter(va + vb for (_, va), (_, vb) in held_out_pairs(seen)).most_common(1)[0][0]
    return accuracy(lambda _: str(guess), unseen)


def one_seed(
    seed: int, strategies: dict[str, tuple[int, float]], steps: int, lora_steps: int
) -> dict[str, dict]:
    torch.manual_seed(seed)
    rows = task(seed)
    seen, unseen = rows[:40], rows[40:]
    out: dict[str, dict] = {
        "chance (commonest training sum)": {"params": None, "exact": chance(seen, unseen)}
    }
    with tempfile.TemporaryDirectory() as tmp:
        paths, tok = build_models(Path(tmp), rows, steps, seed)
        train = value_labelled(tok, lines(lambda r: composed(seen, r, known=True), 600, seed + 4))
        for name in ("anchor", "values"):
            model = ModelWrapper(paths[name])
            out[f"{name} alone"] = {
                "params": None,
                "exact": accuracy(lambda p, m=model: greedy(m, tok, p), unseen),
            }
        budget = 0
        for strategy, (n, lr) in strategies.items():
            start = time.perf_counter()
            braided, gen = fused(
                [paths["anchor"], paths["values"]], strategy, n, lr, train, seed, new_tokens=4
            )
            budget = max(budget, braided.num_fusion_parameters())
            exact = accuracy(gen, unseen)
            out[f"braid ({strategy})"] = {"params": braided.num_fusion_parameters(), "exact": exact}
            print(f"seed {seed} {strategy}: {exact:.0%} ({time.perf_counter() - start:.0f}s)", flush=True)
        rank = lora_rank_for(ModelWrapper(paths["anchor"]).model, budget)
        lora, n_lora = train_lora(paths["anchor"], train, rank, lora_steps, 3e-3, seed)
        out[f"LoRA on anchor (rank {rank})"] = {
            "params": n_lora,
            "exact": accuracy(lambda p: greedy(lora, tok, p), unseen),
        }
    return out


def run(smoke_test: bool = False, tiny: bool = False, seeds: int = 3, steps: int = 3000) -> list[list[str]]:
    """``tiny`` is accepted for ``braid bench``; the task trains its own small models either way."""
    strategies = {s: (3, lr) for s, (_, lr) in STRATEGIES.items()} if smoke_test else STRATEGIES
    per_seed = [
        one_seed(s, strategies, 40 if smoke_test else steps, 3 if smoke_test else 800) for s in range(seeds)
    ]
    rows = [
        [
            name,
            "-" if runs[0]["params"] is None else f"{runs[0]['params']:,}",
            mean_sd([r["exact"] for r in runs]),
        ]
        for name in per_seed[0]
        for runs in [[s[name] for s in per_seed]]
    ]
    md = markdown_table(["model", "trained params", "exact sum, held-out keys"], rows)
    print(md)
    if not smoke_test:
        fusion = ", ".join(f"{s} {n} steps" for s, (n, _) in STRATEGIES.items())
        body = (
            f"Anchor (Llama 64x4) trained on sums of numbers 10-49 and the format with random numbers; values "
            f"expert (Qwen2 64x3) on `key=value.` (values 10-49); {steps} pretraining steps each. Fusion on sums over keys 0-39 "
            f"({fusion}, lr 3e-3, value-only labels), tested on all 380 ordered pairs of keys 40-59; hidden-state strategies "
            f"at anchor blocks 0 and 1; LoRA rank matched to the largest braid, 800 steps. Mean ± sd over "
            f"{seeds} seeds. Chance: the commonest sum over pairs of training keys, answered to every test "
            f"pair (a sum takes 79 values), the floor a part that reads no key reaches.\n\n" + md
        )
        write_section(
            "kv_arith", "KV-arithmetic (bench/kv_arith.py)", f"python bench/kv_arith.py --seeds {seeds}", body
        )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke-test", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    run(smoke_test=args.smoke_test, seeds=1 if args.smoke_test else args.seeds, steps=args.steps)
