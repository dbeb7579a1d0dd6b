"""Multi-agent braiding: meta-braiders with different objectives propose, a small arbiter picks.

Each proposer is a meta-braider (its own pretraining seed, so its own errors) with an objective that ranks
candidates: quality first (the predicted score), latency first (the score minus the predicted log decode
ms) or cost first (the score minus the compute share). The arbiter's constraints come first: a candidate is
allowed only if every proposer predicts that it meets the request's limits (a limit one agent overrates is
caught by the others). Every proposer puts forward its best allowed candidate, and the arbiter takes the
proposal with the best mean predicted score (the ensemble's view of quality, less noisy than any one
agent's). Nothing allowed: as a single agent does, a latency limit that every view expects (without the
calibrated slack) some candidate to meet is answered by the candidate closest to surely meeting it;
otherwise infeasible, naming the candidate that misses by the least.

The arbiter is rules, not a learnt model: with a handful of proposals per request, a rule that uses every
proposer's prediction needs no data of its own and cannot overfit the records the proposers learnt from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from meta.agent import Infeasible, closest_on_latency
from meta.features import Constraints

if TYPE_CHECKING:
    from meta.agent import MetaBraider
    from meta.decision import BraidingDecision


@dataclass(frozen=True)
class Objective:
    """What a proposer maximises over (C, 3) predictions (score, log ms, log MB) and compute shares (C,)."""

    name: str
    latency: float = 0.0  # weight on the predicted log decode ms
    cost: float = 0.0  # weight on the compute share (0..1 of the pool's parameters)

    def utility(self, pred: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
        return pred[:, 0] - self.latency * pred[:, 1] - self.cost * share  # (C,)


OBJECTIVES = {
    "quality": Objective("quality"),
    "latency": Objective("latency", latency=1.0),
    "cost": Objective("cost", cost=2.0),
}


def objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise KeyError(f"unknown objective {name!r}; valid: {sorted(OBJECTIVES)}")
    return OBJECTIVES[name]


class Arbiter:
    """Proposers (agent, objective name) over one pool and grid; decides like a ``MetaBraider``."""

    def __init__(self, proposers: list[tuple[MetaBraider, str]]):
        if not proposers:
            raise ValueError("an arbiter needs at least one proposer")
        grids = {tuple(a.candidates.keys()) for a, _ in proposers}
        if len(grids) != 1:
            raise ValueError("every proposer must decide over the same pool and grid")
        self.proposers = [(agent, objective(name)) for agent, name in proposers]
        self.last: dict[str, Any] = {}  # the last decision's proposals, for explanation

    @property
    def candidates(self):
        return self.proposers[0][0].candidates

    @property
    def compute_share(self) -> torch.Tensor:
        return self.proposers[0][0].compute_share

    @torch.no_grad()
    def forward(self, task_info: Any, **constraints: Any) -> BraidingDecision:
        return self.decide_among(task_info, None, **constraints)

    __call__ = forward

    @torch.no_grad()
    def decide_among(self, task_info: Any, indices: list[int] | None, **constraints: Any) -> BraidingDecision:
        limits = Constraints(**constraints)
        views = []  # per proposer: predictions (C, 3) and how far each candidate misses the limits (C, 3)
        for agent, _ in self.proposers:
            pred = agent.scores(task_info)[0]
            violation = agent.violations(task_info, pred, limits, indices)  # (C, 3)
            views.append((pred, violation))
        joint = torch.stack([(v == 0).all(-1) for _, v in views]).all(0)  # (C,) feasible in every view
        proposals = self._proposals(views, joint) or self._closest_on_latency(
            task_info, views, limits, indices
        )
        mean = torch.stack([p[:, 0] for p, _ in views]).mean(0)  # (C,) the ensemble's predicted score
        self.last = {"proposals": proposals, "feasible": int(joint.sum())}
        if not proposals:
            miss = torch.stack([v.sum(-1) for _, v in views]).sum(0)  # (C,) summed over the views
            raise Infeasible(
                f"infeasible: no candidate meets the constraints in every proposer's view ({limits})",
                self.proposers[0][0].candidates.decision(int(miss.argmin()), 0.5, 0.0),
            )
        best = max(proposals, key=lambda i: float(mean[i]))
        # every proposer judged it feasible, so the first one builds it (its lr and temperature)
        return self.proposers[0][0].decide_among(task_info, [best], **constraints)

    def _closest_on_latency(
        self, task_info: Any, views: list[tuple[torch.Tensor, torch.Tensor]], limits: Constraints,
        indices: list[int] | None,
    ) -> list[int]:  # fmt: skip
        """As a single agent does (``MetaBraider._likeliest``), over every proposer's view."""
        if limits.latency_requirement is None:
            return []
        expected = [
            agent.violations(task_info, pred, limits, indices, latency_slack=False)
            for (agent, _), (pred, _) in zip(self.proposers, views, strict=True)
        ]
        i = closest_on_latency([v for _, v in views], expected)
        return [] if i is None else [i]

    def _proposals(self, views: list[tuple[torch.Tensor, torch.Tensor]], joint: torch.Tensor) -> list[int]:
        """Each proposer's best candidate by its objective among those every proposer judges feasible."""
        if not joint.any():
            return []
        out = []
        for (agent, obj), (pred, _) in zip(self.proposers, views, strict=True):
            utility = obj.utility(pred, agent.compute_share).masked_fill(~joint, -torch.inf)
            if (i := int(utility.argmax())) not in out:
                out.append(i)
        return out
