"""A synthetic world for online feedback: three task types, each with one best braid (its anchor, partner,
strategy and two fusion points). Pretraining on the world shifted by one type leaves an agent that is wrong
on every type, so what the feedback teaches shows in its decisions."""

from __future__ import annotations

import random

from meta import DecisionSpace, MetaBraider, MetaTask
from meta.learn import Observation, pretrain
from tests.meta.test_agent import POOL

SPACE = DecisionSpace(strategies=("attention", "router", "output_router"), fusion_points=(1, 2),
                      fusion_dims=(16,), steps=(20,), placements=("spread",), max_members=2)  # fmt: skip
KINDS = ("code_completion", "fact_recall", "arithmetic")
BEST = [("code", "attention", "prose"), ("facts", "router", "big"), ("prose", "output_router", "code")]


def task(kind: str, i: int) -> MetaTask:
    """Variant ``i`` of a task type (its complexity and text vary)."""
    text = {"code_completion": "finish python code", "fact_recall": "recall stored facts",
            "arithmetic": "add two numbers"}[kind]  # fmt: skip
    caps = {"code_completion": ("code",), "fact_recall": ("recall",), "arithmetic": ("math",)}[kind]
    return MetaTask(
        type=kind, complexity=0.2 + 0.6 * (i % 7) / 6, capabilities=caps, description=f"{text} {i}"
    )


def score(t: MetaTask, d, shift: int = 0) -> float:
    anchor, strategy, partner = BEST[(KINDS.index(t.type) + shift) % 3]
    return (0.5 * (d.anchor == anchor) + 0.3 * (d.strategy == strategy) + 0.1 * (d.fusion_points == 2)
            + 0.2 * (partner in d.members))  # fmt: skip


def stream(agent: MetaBraider, n: int, seed: int, shift: int = 0) -> list[tuple[MetaTask, object, float]]:
    """``n`` random decisions on random tasks with their score in the world shifted by ``shift``."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        t = task(rng.choice(KINDS), rng.randrange(100))
        d = agent.candidates.decision(rng.randrange(len(agent.candidates)), 0.5, 0.0)
        out.append((t, d, score(t, d, shift)))
    return out


def wrong_agent(seed: int = 0) -> MetaBraider:
    """An agent pretrained on the shifted world: it anchors every type on another type's model."""
    import torch

    torch.manual_seed(seed)
    agent = MetaBraider(POOL, SPACE, dim=32)
    obs = [Observation(t, d, s) for t, d, s in stream(agent, 300, seed, shift=1)]
    pretrain(agent, obs, steps=100, transfer=False)
    return agent


HELD_OUT = [task(k, 1000 + i) for k in KINDS for i in range(10)]


def top_choices(agent: MetaBraider, tasks: list[MetaTask] = HELD_OUT) -> list[int]:
    return [agent.candidates.index_of(agent(t)) for t in tasks]


def quality(agent: MetaBraider, tasks: list[MetaTask] = HELD_OUT) -> float:
    """Mean true score of the agent's choices (1.1 is every task's best)."""
    return sum(score(t, agent.candidates.decision(i, 0.5, 0.0)) for t, i in zip(tasks, top_choices(agent, tasks),
                                                                                   strict=True)) / len(tasks)  # fmt: skip
