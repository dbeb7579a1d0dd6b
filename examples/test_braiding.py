"""The seed's `python examples/test_braiding.py`: checks that braiding works on this machine, each step
printed with its result, exit status 1 on the first failure.

    python examples/test_braiding.py
"""

import sys

import torch
from common import zoo

from braid import BraidedLLM, ModelWrapper


def check(name: str, ok: bool) -> None:
    print(f"[{'ok' if ok else 'FAIL'}] {name}")
    if not ok:
        sys.exit(1)


paths = zoo()
member = ModelWrapper(paths["prose-llama"])
ids = member.encode("Hello world")["input_ids"]
states = member.forward(input_ids=ids).hidden_states
check(
    f"hidden states: {len(states)} (embeddings + {member.num_layers} blocks)",
    len(states) == member.num_layers + 1,
)
check(
    "get_layer_output(layer_idx=1) is hidden_states[1]",
    torch.equal(member.get_layer_output(ids, layer_idx=1), states[1]),
)

models = [{"model_name": paths["prose-llama"]}, {"model_name": paths["code-qwen2"]}]
for strategy in ("learned_weighted", "attention", "router"):
    braided = BraidedLLM(model_configs=models, fusion_strategy=strategy, fusion_layers=[0, 1])
    frozen = all(not p.requires_grad for m in braided.models for p in m.parameters())
    check(f"{strategy}: members frozen, {braided.num_fusion_parameters():,} fusion parameters train", frozen)
    logits = braided.forward(input_ids=ids).logits
    logits.float().logsumexp(-1).sum().backward()
    grads = [p.grad for p in braided.fusion_modules.parameters() if p.grad is not None]
    check(f"{strategy}: gradients reach the fusion only", bool(grads) and frozen)
    check(f"{strategy}: generates", isinstance(braided.generate("def add(", max_new_tokens=4), str))
print("braiding works")
