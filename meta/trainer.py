"""``MetaBraiderTrainer``: the seed's episode loop against real braids.

Each episode samples a training task, lets the agent decide (sampling from its policy, so it explores),
builds that braid from the pool's checkpoints, trains its fusion on the task's train split and measures
the task's score on the eval split, exactly as a sweep trial does (``tune.trainable.run_trial``), then
feeds the score back (``learn_from_feedback``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from meta.agent import MetaBraider
from meta.decision import BraidingDecision
from tune.space import trial_config


@dataclass
class Episode:
    task: str
    decision: BraidingDecision
    performance: float
    metrics: dict[str, Any]


def measure(decision: BraidingDecision, task: Any, zoo: dict[str, str], seed: int = 0) -> dict[str, Any]:
    """Train the decided braid on ``task`` (a tune TaskSpec) and return its final metrics and cost."""
    from tune.trainable import run_trial

    reports: list[dict[str, Any]] = []
    run_trial(
        trial_config(decision), task, zoo, lambda m, _: reports.append(m), decision.steps, None, seed,
        shared_members=True,
    )  # fmt: skip
    return reports[-1]


class MetaBraiderTrainer:
    def __init__(self, meta_braider: MetaBraider, training_tasks: list[Any], seed: int = 0):
        from tune.tasks import TaskSpec

        if not training_tasks:
            raise ValueError("training_tasks is empty")
        if missing := sorted(set(meta_braider.names) - set(meta_braider.paths)):
            raise ValueError(f"the meta-braider has no checkpoint path for pool models {missing}")
        self.agent = meta_braider
        self.tasks = [t if isinstance(t, TaskSpec) else TaskSpec.model_validate(t) for t in training_tasks]
        self.rng = random.Random(seed)
        self.feedback = meta_braider.online_learner(seed=seed)  # learn_from_feedback shares it

    def episode(self) -> Episode:
        task = self.rng.choice(self.tasks)
        info = task.info
        decision = self.feedback.sample(info)
        metrics = measure(decision, task, self.agent.paths)
        performance = float(metrics["score"])
        self.agent.learn_from_feedback(task_info=info, decision=decision, performance=performance)
        return Episode(task.name, decision, performance, metrics)

    def train(self, episodes: int, progress: bool = True) -> list[Episode]:
        out = []
        bar = tqdm(range(episodes), desc="meta-braider episodes", disable=not progress)
        for _ in bar:
            out.append(self.episode())
            bar.set_postfix(task=out[-1].task, score=f"{out[-1].performance:.3f}")
        return out
