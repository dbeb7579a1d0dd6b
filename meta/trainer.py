"""``MetaBraiderTrainer``: the seed's episode loop against real braids.

Each episode takes a training task, lets the agent decide (sampling from its policy, so it explores),
builds that braid and measures it, then feeds the 0..1 performance back (``learn_from_feedback``). A task
is either
- the seed's shape, ``{"info": ..., "data": prompt, "expected_output": ...}`` (``meta.outcomes.UserTask``):
  the braid generates from the prompt and the output is scored against the expected one (exact match,
  similarity, semantic similarity or your metric); or
- a zoo task (``tune.tasks.TaskSpec``): the braid's fusion trains on the task's train split and is scored on
  its eval split exactly as a sweep trial is (``tune.trainable.run_trial``); the raw score is reported as
  quality (``MetaBraider.quality``).

``curriculum=True`` orders the episodes easy to hard by measured difficulty: each task is run once with the
agent's current choice first, and a task the agent already does well on is easy. The episodes then sweep
the tasks in stages, the easiest third first, widening to all of them (``curriculum_stages``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from meta.agent import MetaBraider
from meta.decision import BraidingDecision, create_braided_model
from meta.outcomes import UserTask, evaluate
from tune.space import trial_config


@dataclass
class Episode:
    task: str
    decision: BraidingDecision
    performance: float  # 0..1
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


def _as_task(task: Any) -> Any:
    from tune.tasks import TaskSpec

    if isinstance(task, TaskSpec | UserTask):
        return task
    if isinstance(task, dict) and "data" in task:
        return UserTask.model_validate(task)
    return TaskSpec.model_validate(task)


def curriculum_stages(order: list[int], episodes: int, stages: int = 3) -> list[int]:
    """Episode task indices for tasks sorted easy to hard: stage k of ``stages`` draws from the easiest
    k/stages of them, the ones it adds first, then the earlier ones in turn."""
    out, before = [], 0
    for k in range(1, stages + 1):
        upto = max(1, round(len(order) * k / stages))
        pool = order[before:upto] + order[:before]  # the newly added tasks lead their stage
        n = episodes * k // stages - episodes * (k - 1) // stages
        out += [pool[i % len(pool)] for i in range(n)]
        before = upto
    return out


class MetaBraiderTrainer:
    def __init__(
        self,
        meta_braider: MetaBraider,
        training_tasks: list[Any],
        seed: int = 0,
        curriculum: bool = False,
        max_new_tokens: int = 32,
    ):
        if not training_tasks:
            raise ValueError("training_tasks is empty")
        if missing := sorted(set(meta_braider.names) - set(meta_braider.paths)):
            raise ValueError(f"the meta-braider has no checkpoint path for pool models {missing}")
        self.agent, self.curriculum, self.max_new_tokens = meta_braider, curriculum, max_new_tokens
        self.tasks = [_as_task(t) for t in training_tasks]
        self.rng = random.Random(seed)
        self.feedback = meta_braider.online_learner(seed=seed)  # learn_from_feedback shares it
        self.difficulty: list[float] | None = None

    def run(self, task: Any, decision: BraidingDecision) -> tuple[float, dict[str, Any]]:
        """(performance 0..1, metrics) of ``decision`` on ``task``."""
        if isinstance(task, UserTask):
            with create_braided_model(decision, self.agent.paths) as braided:
                output = braided.generate(task.data, max_new_tokens=self.max_new_tokens)
            return evaluate(output, task.expected_output, task.metric), {"output": output}
        metrics = measure(decision, task, self.agent.paths)
        return self.agent.quality(task.info, float(metrics["score"])), metrics

    def episode(self, task: Any | None = None) -> Episode:
        task = task if task is not None else self.rng.choice(self.tasks)
        decision = self.feedback.sample(task.info)
        performance, metrics = self.run(task, decision)
        if "score" in metrics:  # a zoo task's raw score: learn from it as measured, not clipped to 0..1
            self.agent.learn_from_feedback(task.info, decision, score=float(metrics["score"]))
        else:
            self.agent.learn_from_feedback(task.info, decision, performance)
        return Episode(task.name, decision, performance, metrics)

    def measure_difficulty(self) -> list[float]:
        """1 - the performance of the agent's current choice, per task (one run each)."""
        self.difficulty = [1.0 - self.run(t, self.agent(t.info))[0] for t in self.tasks]
        return self.difficulty

    def schedule(self, episodes: int) -> list[int]:
        if not self.curriculum:
            return [self.rng.randrange(len(self.tasks)) for _ in range(episodes)]
        difficulty = self.difficulty or self.measure_difficulty()
        return curriculum_stages(sorted(range(len(self.tasks)), key=difficulty.__getitem__), episodes)

    def train(self, episodes: int, progress: bool = True) -> list[Episode]:
        out = []
        bar = tqdm(self.schedule(episodes), desc="meta-braider episodes", disable=not progress)
        for i in bar:
            out.append(self.episode(self.tasks[i]))
            bar.set_postfix(task=out[-1].task, performance=f"{out[-1].performance:.2f}")
        return out


def train(
    meta_braider: MetaBraider, tasks: list[Any], episodes: int | None = None, **settings: Any
) -> list[Episode]:
    """The seed's ``train(meta_braider, tasks)``: episodes (default: two per task) with a trainer over
    ``tasks``; ``settings`` go to ``MetaBraiderTrainer``."""
    trainer = MetaBraiderTrainer(meta_braider, tasks, **settings)
    return trainer.train(episodes if episodes is not None else 2 * len(trainer.tasks), progress=False)
