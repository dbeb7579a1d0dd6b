"""The three fusion strategies of the cheat sheet, side by side on the same members and text:
learned_weighted (fused = sum of learned weights x states), attention (the anchor attends to the others),
router (a per-token router mixes the members). `braid strategies` lists the others (calm, output_router,
pointer, ...).

    python examples/fusion_strategies.py
"""

import torch
from common import zoo

from braid import BraidedLLM

paths = zoo()
models = [{"model_name": paths["prose-llama"]}, {"model_name": paths["code-qwen2"]}]
text = "def add(a, b):"

for strategy in ("learned_weighted", "attention", "router"):
    braided = BraidedLLM(model_configs=models, fusion_strategy=strategy, fusion_layers=[0, 1], fusion_dim=16)
    ids = braided.anchor_model.encode(text)["input_ids"]
    with torch.no_grad():
        out = braided.forward(input_ids=ids)
    print(
        f"{strategy:>16}: {braided.num_fusion_parameters():>6,} trainable parameters, logits {tuple(out.logits.shape)}"
    )
