"""``MetaBraider``: decides which models to braid, where, how and with which parameters, for a task.

Decisions are made by scoring every candidate configuration of the pool with the decision net's quality and
cost predictions and taking the best one that meets the constraints (compute budget: exact, from the pool's
parameter counts; latency and accuracy: predicted). The selector heads give the policy's own probabilities,
which the explanation reports and which imitation of the sweep's best configs trains.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from meta.calibration import Calibration
from meta.decision import BraidingDecision, Candidates
from meta.explain import explain
from meta.features import (
    DOMAIN_SLOTS,
    TYPE_SLOTS,
    Constraints,
    MetaTask,
    as_other,
    encode_model,
    encode_task,
)
from meta.learn import Feedback
from meta.net import DecisionLogits, DecisionNet, DecisionSpace

FORMAT = "llm-braid-meta/2"  # 2: model tokens carry task affinity


class Infeasible(ValueError):
    """No candidate meets the constraints; ``closest`` is the decision that misses them by the least."""

    def __init__(self, message: str, closest: BraidingDecision):
        super().__init__(message)
        self.closest = closest


def _features(model: Any) -> dict[str, Any]:
    return model.model_dump() if isinstance(model, BaseModel) else dict(model)


class MetaBraider(nn.Module):
    def __init__(
        self,
        model_pool: list[Any],
        space: DecisionSpace | None = None,
        paths: dict[str, str] | None = None,
        dim: int = 64,
    ):
        super().__init__()
        self.pool = [_features(m) for m in model_pool]
        names = [m["name"] for m in self.pool]
        if len(set(names)) != len(names) or len(names) < 2:
            raise ValueError(f"the model pool needs at least 2 models with distinct names, got {names}")
        self.space = space or DecisionSpace()
        self.paths = dict(paths or {})
        self.net = DecisionNet(self.space, dim)
        self.candidates = Candidates(names, self.space)
        params = torch.tensor([float(m["parameters"]) for m in self.pool])
        self.compute_share = (self.candidates.members @ params) / params.sum()  # (C,)
        # the margins and measured costs that keep constraints true (``meta.calibration``); pretraining
        # calibrates them from the records and hands the result over through ``calibrated``
        self.calibration = Calibration.empty(len(self.candidates))
        self.trained_pool = list(names)  # the pool the loaded state was trained on (``load``)
        self._feedback: Feedback | None = None

    @property
    def names(self) -> list[str]:
        return self.candidates.pool

    # -- inputs -------------------------------------------------------------------------------------------
    def encode(
        self,
        task: Any,
        constraints: Constraints | None = None,
        unseen: bool = False,
        identity_dropout: float = 0.0,
    ) -> DecisionLogits:
        """The decision net's outputs for ``task``. A task type pretraining never saw (or any, with ``unseen``;
        or a random share ``identity_dropout`` of calls, in training) reads as "other": its type and the
        models' domain one-hots hidden, so it is judged by its text, capabilities and model affinity."""
        meta_task = MetaTask.of(task)
        task_vec = encode_task(meta_task, constraints)[None]  # (1, TASK_DIM)
        models = torch.stack([encode_model(m, meta_task) for m in self.pool])[None]  # (1, N, MODEL_DIM)
        if (
            unseen
            or self._unseen(meta_task)
            or (identity_dropout and float(torch.rand(())) < identity_dropout)
        ):
            task_vec, models = as_other(task_vec, TYPE_SLOTS), as_other(models, DOMAIN_SLOTS)
        return self.net(task_vec, models, torch.ones(1, len(self.pool), dtype=torch.bool))

    def _unseen(self, task: MetaTask) -> bool:
        seen = self.calibration.seen_types
        return bool(seen) and task.type not in seen

    @property
    def seen_types(self) -> list[str]:
        return list(self.calibration.seen_types)

    def calibrated(self, calibration: Calibration) -> None:
        """Hold ``calibration`` (what ``meta.learn.calibrate`` returned) from now on."""
        if len(calibration.measured_ms) != len(self.candidates):
            raise ValueError(
                f"a calibration of {len(calibration.measured_ms)} candidates for {len(self.candidates)}"
            )
        self.calibration = calibration

    def predict(self, out: DecisionLogits) -> tuple[torch.Tensor, float, float]:
        """Predicted (score, log ms, log MB) per candidate (C, 3), with the predicted lr and temperature."""
        lr01, temp01 = (float(x) for x in out.continuous[0])
        c = self.candidates
        pred = self.net.score(out, c.members[None], c.anchor[None], c.config(lr01, temp01)[None])[0]
        return pred, lr01, temp01

    # -- deciding -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def forward(
        self,
        task_info: Any,
        compute_budget: float | None = None,
        latency_requirement: float | None = None,
        accuracy_target: float | None = None,
    ) -> BraidingDecision:
        return self._decide(task_info, Constraints(
            compute_budget=compute_budget, latency_requirement=latency_requirement, accuracy_target=accuracy_target
        ))[0]  # fmt: skip

    @torch.no_grad()
    def decide_among(self, task_info: Any, indices: list[int], **constraints: Any) -> BraidingDecision:
        """The best of some candidates only (e.g. the configurations a benchmark has measured)."""
        return self._decide(task_info, Constraints(**constraints), indices)[0]

    def _decide(
        self, task_info: Any, limits: Constraints, among: list[int] | None = None
    ) -> tuple[BraidingDecision, dict[str, Any]]:
        out = self.encode(task_info, limits)
        pred, lr01, temp01 = self.predict(out)
        cal = self.calibration
        known = ~cal.measured_ms.isnan()
        pred[known, 1] = cal.measured_ms[known].log()  # measured decode ms where the records have it
        unseen = self._unseen(MetaTask.of(task_info))
        violation = self._violations(pred, limits, cal.score_margin[int(unseen)])  # (C, 3), 0 = met
        if among is not None:  # everything else counts as infinitely far from feasible
            outside = torch.ones(len(pred), dtype=torch.bool)
            outside[among] = False
            violation[outside] = math.inf
        feasible = (violation == 0).all(-1)
        if not feasible.any():
            i = int(violation.sum(-1).argmin())
            closest = self.candidates.decision(i, lr01, temp01, pred[i].tolist())
            raise Infeasible(f"infeasible: {self._describe(violation[i], limits)}; closest option: "
                             f"{closest.model_dump_json(exclude_none=True)}", closest)  # fmt: skip
        score = pred[:, 0].masked_fill(~feasible, -math.inf)
        allowed = (
            pred[:, 0] if among is None else pred[:, 0].masked_fill(violation.isinf().any(-1), -math.inf)
        )
        i, free = int(score.argmax()), int(allowed.argmax())
        decision = self.candidates.decision(i, lr01, temp01, pred[i].tolist())
        bound = [] if i == free else self._describe(violation[free], limits, names_only=True)
        return decision, {
            "out": out,
            "pred": pred,
            "index": i,
            "bound": bound,
            "feasible": int(feasible.sum()),
        }

    def _violations(self, pred: torch.Tensor, c: Constraints, score_margin: float = 0.0) -> torch.Tensor:
        zero = torch.zeros(len(pred))
        budget = zero if c.compute_budget is None else (self.compute_share - c.compute_budget).clamp(min=0)
        ms = (pred[:, 1] + self.calibration.latency_slack()).exp()
        latency = (
            zero
            if c.latency_requirement is None
            else ((ms - c.latency_requirement) / c.latency_requirement).clamp(min=0)
        )
        low = pred[:, 0] - score_margin
        accuracy = zero if c.accuracy_target is None else (c.accuracy_target - low).clamp(min=0)
        return torch.stack([budget, latency, accuracy], -1)

    @staticmethod
    def _describe(v: torch.Tensor, c: Constraints, names_only: bool = False) -> Any:
        names = ["compute_budget", "latency_requirement", "accuracy_target"]
        missed = [n for n, x in zip(names, v.tolist(), strict=True) if x > 0]
        if names_only:
            return missed
        return "no candidate meets " + ", ".join(f"{n}={getattr(c, n)}" for n in missed)

    @torch.no_grad()
    def forward_with_explanation(self, task: Any, **constraints: Any) -> tuple[BraidingDecision, str]:
        decision, info = self._decide(task, Constraints(**constraints))
        return decision, explain(self, decision, info)

    def learn_from_feedback(
        self, task_info: Any, decision: BraidingDecision, performance: float, baseline: float | None = None
    ) -> float:
        """One online update (REINFORCE with baseline and entropy bonus, replayed scorer regression)."""
        return self.online_learner().learn(task_info, decision, performance, baseline)

    def online_learner(self, **settings: Any) -> Feedback:
        """The agent's online learner (its optimiser state, baselines and replay buffer), made on first use
        with ``settings`` (``meta.learn.Feedback``'s); every online update goes through this one."""
        if self._feedback is None:
            self._feedback = Feedback(self, **settings)
        return self._feedback

    def create_braided_model(self, decision: BraidingDecision, placement: str = "local", ray_placement=None):
        from braid import BraidedLLM

        config = decision.to_braid_config(self.paths)
        return BraidedLLM(config=config, placement=placement, ray_placement=ray_placement)

    # -- persistence --------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        torch.save({"format": FORMAT, "pool": self.pool, "space": self.space.model_dump(), "paths": self.paths,
                    "dim": self.net.task_in[0].out_features, "state": self.state_dict(),
                    "calibration": self.calibration.to_dict()}, path)  # fmt: skip

    @classmethod
    def load(cls, path: str | Path, model_pool: list[Any] | None = None) -> MetaBraider:
        """Load a saved agent; ``model_pool`` may differ from the one it was trained on (features carry over)."""
        blob = torch.load(path, weights_only=False)
        if blob.get("format") != FORMAT:
            raise ValueError(f"{path} is not a meta-braider checkpoint (format {blob.get('format')!r})")
        agent = cls(model_pool or blob["pool"], DecisionSpace(**blob["space"]), blob["paths"], blob["dim"])
        state = {k: v for k, v in blob["state"].items() if k not in CALIBRATION_BUFFERS}
        missing, unexpected = agent.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path}: state does not fit (missing {missing}, unexpected {unexpected})")
        trained_pool = [m["name"] for m in blob["pool"]]
        same = trained_pool == agent.names
        old = agent.candidates if same else Candidates(trained_pool, agent.space)  # the grid it was saved on
        saved = (
            Calibration.from_dict(blob["calibration"]) if "calibration" in blob
            else Calibration.from_buffers(blob["state"], blob.get("seen_types", []), len(old))
        )  # fmt: skip
        agent.calibrated(
            saved if same else saved.remapped(_carried(old, agent, saved), len(agent.candidates))
        )
        agent.trained_pool = trained_pool
        return agent


# buffers in which agents saved before ``meta.calibration`` kept their calibration
CALIBRATION_BUFFERS = ("latency_margin", "measured_ms", "measured_margin", "measured_spread", "score_margin")


def _carried(old: Candidates, agent: MetaBraider, saved: Calibration) -> dict[int, int]:
    """Each measured old candidate's index -> the same configuration's index on the agent's grid (members
    that left the pool drop out)."""
    index = {}
    for i in (~saved.measured_ms.isnan()).nonzero().flatten().tolist():
        try:
            index[i] = agent.candidates.index_of(old.decision(i, 0.5, 0.0))
        except (KeyError, ValueError):
            continue
    return index
