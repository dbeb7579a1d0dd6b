"""Long prompts go into a braid in blocks: the same logits as one pass, memory linear in the prompt."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import braid.generation as generation
from braid import BraidedLLM
from braid.generation import BraidSession
from tests.conftest import randomize_fusion

ROOT = Path(__file__).resolve().parents[2]
PLANS = [("learned_weighted", [0, 1]), ("attention", [0, 1]), ("router", [0, 1]), ("calm", [0, 1]),
         ("output_router", []), ("pointer", []), ("calm+output_router", [0, 1])]  # fmt: skip


@pytest.mark.parametrize(("strategy", "layers"), PLANS)
def test_a_prompt_fed_in_blocks_gives_the_one_pass_logits(trio, tokenizer, monkeypatch, strategy, layers):
    braided = BraidedLLM(model_configs=trio, fusion_strategy=strategy, fusion_layers=layers, fusion_dim=32)
    randomize_fusion(braided, seed=3)
    ids = tokenizer("every member keeps its own cache while the braid reads", return_tensors="pt")[
        "input_ids"
    ]
    with torch.no_grad():
        whole = braided(ids).logits[0, -1]
    monkeypatch.setattr(generation, "PREFILL_BLOCK", 3)
    assert ids.shape[1] > 6
    assert torch.allclose(BraidSession(braided).feed(ids)[0], whole, atol=1e-4)


def test_a_cross_tokenizer_prompt_fed_in_blocks_gives_the_one_pass_logits(cross_trio, monkeypatch):
    braided = BraidedLLM(
        model_configs=cross_trio, fusion_strategy="attention", fusion_layers=[0, 1], fusion_dim=32
    )
    randomize_fusion(braided, seed=3)
    ids = braided.anchor_model.encode("a long prompt, read by members with their own tokenizers")["input_ids"]
    with torch.no_grad():
        whole = braided(ids).logits[0, -1]
    monkeypatch.setattr(generation, "PREFILL_BLOCK", 4)
    assert torch.allclose(BraidSession(braided).feed(ids)[0], whole, atol=1e-4)


PEAK = """
import json, resource, sys, torch
from braid import BraidedLLM
import braid.generation as generation
from braid.generation import BraidSession
paths, tokens, block = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
generation.PREFILL_BLOCK = block
braided = BraidedLLM(model_configs=paths, fusion_strategy="attention", fusion_layers=[0, 1], fusion_dim=32)
BraidSession(braided).feed(torch.randint(5, 200, (1, 64)))  # warm: allocator, kernels
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
BraidSession(braided).feed(torch.randint(5, 200, (1, tokens)))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


@pytest.fixture(scope="module")
def long_pair(save_pico, tokenizer):
    """Two pico members whose context holds a 3000-token prompt."""
    from braid.zoo import build_model

    return [
        save_pico(build_model(family, len(tokenizer), seed=11, max_position_embeddings=4096), f"{family}-4k")
        for family in ("llama", "qwen2")
    ]


def peak_mb(paths: list[str], tokens: int, block: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", PEAK, json.dumps(paths), str(tokens), str(block)],
                         capture_output=True, text=True, env=env, timeout=300, check=True)  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_on_a_long_prompt_grows_linearly(long_pair):
    """3000 tokens through attention fusion: one pass holds 4 heads x (2 x 3000)^2 scores (~0.6 GB per copy,
    1.3 GB measured); in blocks of 256 each pass holds 256 rows of them (~130 MB measured)."""
    blocked = peak_mb(long_pair, 3000, 256)
    one_pass = peak_mb(long_pair, 3000, 10_000)
    assert blocked < 300, f"peak grew by {blocked:.0f} MB on a 3000-token prompt"
    assert one_pass > 5 * blocked, (one_pass, blocked)
