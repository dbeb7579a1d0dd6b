"""The meta-braider's policy as a distribution over decisions: its log-probability of a decision, its
entropy, and a decision drawn from it (exploration). Learning reads these; the agent never needs them to
decide."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from meta.decision import BraidingDecision
from meta.features import MetaTask
from meta.net import DecisionLogits

if TYPE_CHECKING:
    from meta.agent import MetaBraider


def policy_log_prob(out: DecisionLogits, agent: MetaBraider, decision: BraidingDecision) -> torch.Tensor:
    """log pi(decision | task) under the selector heads (factored: inclusion, anchor, each choice)."""
    s, names = agent.space, agent.names
    include = torch.tensor([float(n in decision.members) for n in names])
    lp = -F.binary_cross_entropy_with_logits(out.include[0], include, reduction="sum")
    lp = lp + out.anchor[0].log_softmax(-1)[names.index(decision.anchor)]
    for logits, options, value in (
        (out.strategy, s.strategies, decision.strategy), (out.points, s.fusion_points, decision.fusion_points),
        (out.placement, s.placements, decision.placement), (out.fusion_dim, s.fusion_dims, decision.fusion_dim),
        (out.steps, s.steps, decision.steps),
    ):  # fmt: skip
        lp = lp + logits[0].log_softmax(-1)[options.index(value)]
    return lp


def policy_entropy(out: Any) -> torch.Tensor:
    """Sum of the factored heads' entropies (inclusion as Bernoulli)."""

    def cat(logits: torch.Tensor) -> torch.Tensor:
        p = logits.softmax(-1)
        return -(p * logits.log_softmax(-1)).sum()

    p = out.include[0].sigmoid().clamp(1e-6, 1 - 1e-6)
    bern = -(p * p.log() + (1 - p) * (1 - p).log()).sum()
    return bern + sum(
        cat(x[0]) for x in (out.anchor, out.strategy, out.points, out.placement, out.fusion_dim, out.steps)
    )


@torch.no_grad()
def sample_decision(agent: MetaBraider, task: MetaTask, rng: random.Random) -> BraidingDecision:
    out = agent.encode(task)
    s, names = agent.space, agent.names
    include = out.include[0].sigmoid().tolist()
    chosen = [n for n, p in zip(names, include, strict=True) if rng.random() < p]
    while len(chosen) < 2:  # a braid needs two members: add the likeliest missing ones
        chosen.append(max((n for n in names if n not in chosen), key=lambda n: include[names.index(n)]))
    chosen = sorted(chosen, key=lambda n: -include[names.index(n)])[: s.max_members]
    anchor_p = out.anchor[0].softmax(-1)
    anchor = rng.choices(chosen, weights=[float(anchor_p[names.index(n)]) + 1e-9 for n in chosen])[0]

    def pick(logits: torch.Tensor, options: tuple) -> Any:
        return rng.choices(options, weights=logits[0].softmax(-1).tolist())[0]

    lr, temperature = s.from_unit(*(float(x) for x in out.continuous[0]))
    return BraidingDecision(
        members=tuple(sorted(chosen)), anchor=anchor, strategy=pick(out.strategy, s.strategies),
        fusion_points=pick(out.points, s.fusion_points), placement=pick(out.placement, s.placements),
        fusion_dim=pick(out.fusion_dim, s.fusion_dims), steps=pick(out.steps, s.steps),
        lr=lr, temperature=temperature,
    )  # fmt: skip
