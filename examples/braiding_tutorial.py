"""The seed's `python examples/braiding_tutorial.py`: a walk through braiding, one step at a time.

1. a member and its hidden layers   2. two members braided   3. where fusion happens
4. training only the fusion          5. save and load          6. generating

    python examples/braiding_tutorial.py
"""

import tempfile

import torch
from common import zoo

from braid import BraidedLLM, ModelWrapper
from braid.train import TrainConfig, train_fusion

paths = zoo()

print("1. A member exposes every layer's hidden state: (batch, tokens, hidden)")
member = ModelWrapper(paths["code-qwen2"])
ids = member.encode("def add(a, b):")["input_ids"]
for i, h in enumerate(member.forward(input_ids=ids).hidden_states):
    print(f"   layer {i}: {tuple(h.shape)}")

print("2. Braid the prose model (the anchor: its tokenizer and head) with the code model")
braided = BraidedLLM(
    model_configs=[
        {"model_name": paths["prose-llama"], "role": "anchor"},
        {"model_name": paths["code-qwen2"]},
    ],
    fusion_strategy="attention",
    fusion_layers=[0, 1],
)
print(f"   {braided.num_fusion_parameters():,} trainable fusion parameters; members frozen")

print(
    "3. Fusion happens after the anchor's blocks",
    braided.config.fusion_layers,
    "reading the members' matching layers",
)
print("  ", braided.config.member_layers())

print("4. Train only the fusion on a little code and prose")
texts = [
    "def add(a, b):\n    return a + b",
    "def mul(a, b):\n    return a * b",
    "The list is sorted in place.",
] * 8
history = train_fusion(
    braided, texts, TrainConfig(max_steps=15, batch_size=4, learning_rate=3e-3, progress=False)
)
print(f"   loss {history.train_loss[0]:.3f} -> {history.train_loss[-1]:.3f}")

print("5. Save the fusion (members stay where they are) and load it back")
with tempfile.TemporaryDirectory() as out:
    braided.save_pretrained(out)
    braided = BraidedLLM.from_pretrained(out)

print("6. Generate")
with torch.no_grad():
    print("  ", repr(braided.generate("def add(a, b):", max_new_tokens=12)))
