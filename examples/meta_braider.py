"""The meta-braider (seed "Meta-Braiding"): a pool, a decision per task, the braid it names, and its three
use cases: a multi-domain platform, a resource-constrained deployment and a personalised assistant.

The agent here is fresh (its choices are its untrained priors); `braid meta train --records` pretrains one
from a Tune sweep, and `make demo` does the whole loop.

    python examples/meta_braider.py
"""

from common import zoo

from braid import ModelWrapper
from meta import Infeasible, MetaBraider, create_braided_model

paths = zoo()
# Step 1: the pool. The seed's dicts (model_name + domain; sizes are read from the checkpoint) or loaded models.
model_pool = [
    {"model_name": paths["prose-llama"], "domain": "general"},
    {"model_name": paths["code-qwen2"], "domain": "code"},
    ModelWrapper(paths["facts-mistral"]),  # a model object describes itself (its card gives the domain)
]
meta_braider = MetaBraider(model_pool)

# Deploy: decide, explain, build, generate
task = {"type": "code", "complexity": 0.8, "description": "write a sorting algorithm"}
decision, explanation = meta_braider.forward_with_explanation(task)
print(explanation)
braided = create_braided_model(decision)
print("output:", repr(braided.generate("def sort(xs):", max_new_tokens=12)))

# Use case 1, multi-domain platform: each query gets its own braid
for query in (
    {"type": "qa", "capabilities": ["recall"]},
    {"type": "code_completion", "capabilities": ["code"]},
):
    d = meta_braider(task=query)
    print(f"{query['type']:>16}: anchor {d.anchor}, members {list(d.members)}, {d.strategy}")

# Use case 2, resource-constrained: a compute budget (share of the pool's parameters) and a latency limit
for budget in (1.0, 0.6):
    try:
        d = meta_braider.forward(task=task, compute_budget=budget, accuracy_target=0.5)
        print(f"budget {budget}: {list(d.members)}")
    except Infeasible as e:  # names the constraint and the closest option
        print(f"budget {budget}: {e}")

# Use case 3, a personalised assistant: ana's ratings adjust her decisions only
liked = meta_braider(task=task)
for _ in range(3):
    meta_braider.learn_from_feedback(task_info=task, decision=liked, performance=0.1, user="ana")
print(
    "ana now gets:",
    meta_braider(task=task, user="ana").anchor,
    "| everyone else:",
    meta_braider(task=task).anchor,
)
