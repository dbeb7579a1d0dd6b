"""Training fusion layers (the cheat sheet's recipe): members frozen, only the fusion trains; then save,
load and generate. `braid train config.yaml` does the same from a YAML file.

    python examples/train_fusion.py
"""

import tempfile

from common import zoo

from braid import BraidedLLM
from braid.train import TrainConfig, train_fusion

paths = zoo()
braided = BraidedLLM(
    model_configs=[{"model_name": paths["prose-llama"]}, {"model_name": paths["code-qwen2"]}],
    fusion_strategy="router",
    fusion_layers=[0, 1],
)
texts = ["def add(a, b):\n    return a + b", "The module reads the file and returns its text."] * 16
history = train_fusion(
    braided, texts, TrainConfig(max_steps=20, batch_size=4, learning_rate=3e-3, progress=False)
)
print(
    f"train loss {history.train_loss[0]:.3f} -> {history.train_loss[-1]:.3f} over {len(history.train_loss)} steps"
)

with tempfile.TemporaryDirectory() as out:
    braided.save_pretrained(out)  # the fusion weights and the braid's config; members stay where they are
    again = BraidedLLM.from_pretrained(out)
    assert again.generate("def add(", max_new_tokens=8) == braided.generate("def add(", max_new_tokens=8)
    print("saved, loaded, same text:", repr(again.generate("def add(", max_new_tokens=8)))
