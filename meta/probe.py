"""Measure before answering: limits on a task type the agent has never measured.

On such a type the agent's promises rest on predictions that transfer imperfectly: its ranking of near-best
braids, and decode ms that depend on the type's own text (bench/meta.py reads both off its misses). A
``Probe`` measures what the decision turns on, on the request's own task, and then decides on that:

- under a latency limit, the decode ms of the candidates within the compute budget (up to ``timed`` of them,
  the best predicted first): cheap, since an untrained braid decodes exactly as fast as a trained one;
- when the request sets a score limit, scores from short trials of the candidates within the budget and the
  measured latency limit, in predicted order, until no unmeasured one could change the answer (``settled``):
  each judged on its prediction moved by the agent's mean error on the measured ones (a transfer bias the
  candidates share) plus a ``doubt``; at most ``k`` trials a request. A score promise is then made only on
  a measured score.

Measurements are kept per task, so later requests on it pay only for what they add; ``spent`` counts them. A
type the agent has measured is decided as before, measuring nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from meta.features import MetaTask

Measure = Callable[[Any, int], float]  # (task, candidate index) -> a score or decode ms on that task


@dataclass(frozen=True)
class Measured:
    """Per candidate index: a score and a decode ms measured on the request's task."""

    score: dict[int, float] = field(default_factory=dict)
    ms: dict[int, float] = field(default_factory=dict)

    def applied(self, pred: torch.Tensor) -> torch.Tensor:
        """The agent's predictions (C, 3: score, log ms, log MB) with the measured values in place, and every
        other score moved by the agent's mean error on the measured ones."""
        pred = pred.clone()
        if self.ms:
            timed = list(self.ms)
            pred[timed, 1] = torch.tensor([self.ms[i] for i in timed]).log()
        if self.score:
            scored = list(self.score)
            got = torch.tensor([self.score[i] for i in scored])  # (K,)
            pred[:, 0] += float((got - pred[scored, 0]).mean())
            pred[scored, 0] = got
        return pred


@dataclass
class Spent:
    """What probing has cost: trials (a score each), decode timings, and their wall time."""

    trials: int = 0
    timings: int = 0
    seconds: float = 0.0


class Probe:
    """Decides like ``agent`` (``decide_among``, ``__call__``), measuring first on a type it never measured."""

    def __init__(
        self,
        agent: Any,
        score_of: Measure,
        ms_of: Measure,
        k: int = 8,
        timed: int = 16,
        doubt: float | None = None,
    ):
        if k < 1 or timed < 1 or (doubt is not None and doubt < 0):
            raise ValueError(
                f"k and timed must be >= 1 and doubt >= 0, got k={k}, timed={timed}, doubt={doubt}"
            )
        self.agent, self.score_of, self.ms_of, self.k, self.timed = agent, score_of, ms_of, k, timed
        self.doubt = doubt
        self.kept: dict[MetaTask, Measured] = {}  # per task
        self.spent = Spent()

    @property
    def doubt_nats(self) -> float:
        """How far an unmeasured candidate may beat its moved prediction: ``doubt``, or by default what
        pretraining measured on types left out (``Calibration.transfer_doubt``)."""
        return self.agent.calibration.transfer_doubt if self.doubt is None else self.doubt

    def __call__(self, task_info: Any, **constraints: Any) -> Any:
        return self.decide_among(task_info, None, **constraints)

    def decide_among(self, task_info: Any, indices: list[int] | None, **constraints: Any) -> Any:
        if MetaTask.of(task_info).type in self.agent.seen_types:
            return self.agent.decide_among(task_info, indices, **constraints)
        measured = self.measure(task_info, indices, constraints)
        if _score_limited(constraints) and measured.score:  # a score promise only on a measured score
            indices = [i for i in (indices or range(len(self.agent.candidates))) if i in measured.score]
        return self.agent.decide_among(task_info, indices, measured=measured, **constraints)

    def measure(self, task_info: Any, indices: list[int] | None, constraints: dict[str, Any]) -> Measured:
        """What this request needs measured on ``task_info`` (added to what earlier requests measured)."""
        task = MetaTask.of(task_info)
        kept = self.kept.get(task, Measured())
        pred = self.agent.scores(task_info, constraints.get("user"))[0]  # (C, 3)
        budget = constraints.get("compute_budget")
        pool = list(range(len(pred))) if indices is None else list(indices)
        within = [i for i in pool if budget is None or float(self.agent.compute_share[i]) <= budget + 1e-9]
        ranked = sorted(within, key=lambda i: -float(pred[i, 0]))
        limit = constraints.get("latency_requirement")
        ms = dict(kept.ms)
        if limit is not None:  # decode ms only matter against a latency limit
            ms |= self._measured(task_info, ranked[: self.timed], kept.ms, self.ms_of, "timings")
        score = dict(kept.score)
        if _score_limited(constraints):
            fast = [i for i in ranked if limit is None or ms.get(i, math.inf) <= limit]
            score = self._scored(task_info, fast, score, pred, constraints)
        self.kept[task] = Measured(score, ms)
        return self.kept[task]

    def _scored(
        self, task_info: Any, fast: list[int], score: dict[int, float], pred: torch.Tensor, limits: dict
    ) -> dict[int, float]:
        """Trials down the predicted order until no unmeasured candidate could change the answer, each judged
        on its prediction moved by the agent's mean error plus ``doubt`` nats; ``k`` trials at most."""
        for _ in range(self.k):
            left = [i for i in fast if i not in score]
            done = [score[i] for i in fast if i in score]
            if not left:
                break
            est = Measured(score).applied(pred)[:, 0]  # (C,)
            rival = max(float(est[i]) for i in left) + self.doubt_nats
            if done and settled(max(done), rival, limits.get("accuracy_target"), limits.get("min_score")):
                break
            score |= self._measured(task_info, left[:1], score, self.score_of, "trials")
        return score

    def _measured(
        self, task_info: Any, indices: list[int], known: dict[int, float], how: Measure, counter: str
    ) -> dict[int, float]:
        new = [i for i in indices if i not in known]
        start = time.perf_counter()
        out = {i: float(how(task_info, i)) for i in new}
        self.spent.seconds += time.perf_counter() - start
        setattr(self.spent, counter, getattr(self.spent, counter) + len(new))
        return out


def _score_limited(constraints: dict[str, Any]) -> bool:
    return constraints.get("accuracy_target") is not None or constraints.get("min_score") is not None


def settled(best: float, rival: float, target: float | None, floor: float | None) -> bool:
    """Whether the best measured score ``best`` answers a request whatever an unmeasured candidate scores up
    to ``rival``: a 0..1 ``target`` holds for it unless a rival beats it by more than the target allows,
    and a raw ``floor`` is decided once a measured score meets it or no rival could."""
    relative = target is None or rival <= best - math.log(max(target, 1e-3))
    raw = floor is None or best >= floor or rival < floor
    return relative and raw


def trial_measures(agent: Any, spec: Any, zoo: dict[str, str]) -> tuple[Measure, Measure]:
    """(score_of, ms_of) for a ``tune.tasks.TaskSpec`` on a zoo: a candidate's score from a short trial of it
    (``meta.trainer.measure``, the agent's own lr and temperature for the task) and its decode ms timed on
    the task's cost prompt, untrained (``tune.trainable.measure_cost``)."""
    from braid.config import probe_architecture
    from meta.trainer import measure
    from tune.space import BraidChoice, trial_config
    from tune.trainable import build_braid, measure_cost

    def decision(task_info: Any, i: int) -> Any:
        lr01, temp01 = agent.scores(task_info)[2:]
        return agent.candidates.decision(i, lr01, temp01)

    def score_of(task_info: Any, i: int) -> float:
        return float(measure(decision(task_info, i), spec, zoo)["score"])

    def ms_of(task_info: Any, i: int) -> float:
        d = decision(task_info, i)
        choice = BraidChoice.from_trial(trial_config(d), probe_architecture(zoo[d.anchor]).num_layers)
        return measure_cost(build_braid(choice, zoo, shared_members=True), spec.cost_prompt()).decode_ms

    return score_of, ms_of
