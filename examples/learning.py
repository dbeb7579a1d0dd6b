"""How the meta-braider learns (seed "Training the Agent" and "Advanced Capabilities"): episodes on the
seed's task shape, few-shot adaptation to a new task type, continuous learning from ratings, and the
monitoring helpers.

    python examples/learning.py
"""

import tempfile

from common import zoo

from meta import (
    MetaBraider,
    MetaBraiderTrainer,
    analyze_decision_patterns,
    create_braided_model,
    evaluate,
    log_decision,
    suggest_improvements,
)

paths = zoo()
meta_braider = MetaBraider([{"model_name": paths[n]} for n in ("prose-llama", "code-qwen2", "arith-gpt2")])

# Training: the seed's tasks (info, data, expected_output), easy to hard (curriculum)
training_tasks = [
    {
        "info": {"type": "code", "complexity": 0.3},
        "data": "def add(a, b):",
        "expected_output": " return a + b",
    },
    {"info": {"type": "arithmetic", "complexity": 0.5}, "data": "12 + 30 =", "expected_output": " 42"},
]
trainer = MetaBraiderTrainer(meta_braider, training_tasks, curriculum=True, max_new_tokens=8)
for e in trainer.train(4, progress=False):
    print(
        f"episode {e.task!r}: {e.decision.strategy} anchored on {e.decision.anchor}, performance {e.performance:.2f}"
    )

# Few-shot: three examples of a new task type, each a decision and how it went (0..1): another anchor did
# well, the agent's own first guess did not.
new_task = {"type": "unit_conversion", "complexity": 0.4}
guess = meta_braider(task=new_task)
other = "arith-gpt2" if guess.anchor != "arith-gpt2" else "code-qwen2"
good = guess.model_copy(update={"anchor": other, "members": tuple(sorted((other, "prose-llama")))})
new_task_examples = [
    {"info": new_task, "decision": good, "performance": 0.9},
    {"info": new_task, "decision": guess, "performance": 0.2},
    {"info": new_task, "decision": good, "performance": 0.85},
]
for example in new_task_examples:
    meta_braider.learn_from_feedback(example)
print(f"first guess anchored {guess.anchor}; after three shots:", meta_braider(task=new_task).anchor)

# Continuous learning: a 1-5 star rating from a user, learned online
user_task = {"type": "code", "complexity": 0.6}
decision = meta_braider.forward(user_task)
output = create_braided_model(decision).generate("def sort(xs):", max_new_tokens=8)
user_rating = 4
meta_braider.learn_from_feedback(task_info=user_task, decision=decision, performance=user_rating / 5.0)

# Monitoring: a decision log, its patterns (table + PNG) and concrete suggestions
with tempfile.TemporaryDirectory() as tmp:
    log = f"{tmp}/decisions.jsonl"
    log_decision(user_task, decision, evaluate(output, " return sorted(xs)"), path=log)
    log_decision(new_task, meta_braider(task=new_task), 0.9, path=log)
    analyze_decision_patterns(log)
    suggest_improvements(log)
