"""Quick start (the cheat sheet's first section): configure models, braid them, generate.

python examples/quickstart.py
"""

from common import zoo

from braid import BraidedLLM

paths = zoo()

# 1. Configure models (any local checkpoint or hub id; "quantization": "8bit" loads one in 8 bits)
models = [
    {"model_name": paths["prose-llama"], "role": "reasoning"},
    {"model_name": paths["facts-mistral"], "role": "knowledge"},
]

# 2. Create the braided model: learned_weighted fusion after the anchor's blocks 0 and 1
braided = BraidedLLM(model_configs=models, fusion_strategy="learned_weighted", fusion_layers=[0, 1])
print(f"{braided.num_fusion_parameters():,} fusion parameters over {len(braided.models)} frozen members")

# 3. Generate (the fusion is untrained: a fresh braid reads as its anchor until you train it)
print(repr(braided.generate("The capital of", max_new_tokens=20)))
