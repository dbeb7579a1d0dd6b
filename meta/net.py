"""The decision net: a small transformer over [task token, model tokens], with the seed's four heads (model
selector, layer selector, strategy selector, param predictor) and a candidate scorer that predicts a
configuration's quality and cost (the supervised target from sweep records).

Pools vary in size, so model tokens come padded with a mask; padded models never get probability mass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from meta.features import MODEL_DIM, TASK_DIM
from tune.space import SearchSpace

NEG = -1e9  # masked logits: exp() underflows to exactly 0, with no NaN from -inf - -inf


class DecisionSpace(BaseModel):
    """The discrete choices of the heads (continuous params are predicted as values in their ranges).

    The grid Tune searches, as the heads see it: ``from_search`` derives it from a ``SearchSpace``, and a
    field left out takes the default search space's value (its strategies: every registered one).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    strategies: tuple[str, ...]
    fusion_points: tuple[int, ...]
    placements: tuple[str, ...]
    fusion_dims: tuple[int, ...]
    steps: tuple[int, ...]
    lr: tuple[float, float] = Field(description="log-uniform range")
    temperature: tuple[float, float]
    max_members: int = Field(ge=2)

    @model_validator(mode="before")
    @classmethod
    def _search_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {**search_grid(SearchSpace()), **data}
        return data

    @classmethod
    def from_search(cls, space: SearchSpace) -> DecisionSpace:
        return cls(**search_grid(space))

    def from_unit(self, lr01: float, temp01: float) -> tuple[float, float]:
        """(lr, temperature) from positions 0..1 in their ranges (lr on a log scale)."""
        (lo, hi), (t0, t1) = self.lr, self.temperature
        return math.exp(math.log(lo) + lr01 * (math.log(hi) - math.log(lo))), t0 + temp01 * (t1 - t0)

    def to_unit(self, lr: float, temperature: float) -> tuple[float, float]:
        """The inverse of ``from_unit``, clipped to 0..1."""
        (lo, hi), (t0, t1) = self.lr, self.temperature
        lr01 = (math.log(lr) - math.log(lo)) / (math.log(hi) - math.log(lo)) if hi > lo else 0.0
        t01 = (temperature - t0) / (t1 - t0) if t1 > t0 else 0.0
        return min(max(lr01, 0.0), 1.0), min(max(t01, 0.0), 1.0)

    @property
    def candidate_dim(self) -> int:
        return (
            len(self.strategies) + len(self.fusion_points) + len(self.placements) + len(self.fusion_dims) + 4
        )


def search_grid(space: SearchSpace) -> dict[str, Any]:
    """The fields of a ``DecisionSpace`` that a search space fixes."""
    return {
        "strategies": space.strategy_choices(),
        "fusion_points": space.fusion_points,
        "placements": space.placements,
        "fusion_dims": space.fusion_dims,
        "steps": space.steps,
        "lr": space.lr,
        "temperature": space.temperature,
        "max_members": space.max_members,
    }


@dataclass
class DecisionLogits:
    include: torch.Tensor  # (B, N) member inclusion logits; padded models at NEG
    anchor: torch.Tensor  # (B, N) anchor logits; padded models at NEG
    points: torch.Tensor  # (B, len(fusion_points))
    placement: torch.Tensor  # (B, len(placements))
    strategy: torch.Tensor  # (B, len(strategies))
    fusion_dim: torch.Tensor  # (B, len(fusion_dims))
    steps: torch.Tensor  # (B, len(steps))
    continuous: torch.Tensor  # (B, 2): lr and temperature, each in 0..1 of its range
    task_state: torch.Tensor  # (B, D) the task token after the transformer
    model_states: torch.Tensor  # (B, N, D)


class DecisionNet(nn.Module):
    def __init__(self, space: DecisionSpace, dim: int = 64, layers: int = 2, heads: int = 4):
        super().__init__()
        self.space = space
        self.task_in = nn.Sequential(nn.Linear(TASK_DIM, dim), nn.GELU(), nn.Linear(dim, dim))
        self.model_in = nn.Sequential(nn.Linear(MODEL_DIM, dim), nn.GELU(), nn.Linear(dim, dim))
        self.kind = nn.Parameter(torch.zeros(2, dim))  # which token is the task, which a model
        block = nn.TransformerEncoderLayer(
            dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.model_selector = nn.Linear(dim, 2)  # include, anchor
        self.layer_selector = nn.Linear(dim, len(space.fusion_points) + len(space.placements))
        self.strategy_selector = nn.Linear(dim, len(space.strategies))
        self.param_predictor = nn.Linear(dim, len(space.fusion_dims) + len(space.steps) + 2)
        self.scorer = nn.Sequential(
            nn.Linear(3 * dim + space.candidate_dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, 3)
        )  # score, log decode ms, log memory MB

    def forward(self, task: torch.Tensor, models: torch.Tensor, pool_mask: torch.Tensor) -> DecisionLogits:
        """task (B, TASK_DIM), models (B, N, MODEL_DIM), pool_mask (B, N) True for real models."""
        tokens = torch.cat(
            [self.task_in(task)[:, None] + self.kind[0], self.model_in(models) + self.kind[1]], 1
        )
        pad = torch.cat([torch.zeros_like(pool_mask[:, :1]), ~pool_mask], 1)  # (B, 1 + N) True = ignore
        h = self.encoder(tokens, src_key_padding_mask=pad)  # (B, 1 + N, D)
        return self.heads(h[:, 0], h[:, 1:], pool_mask)

    def online_parameters(self) -> list[nn.Parameter]:
        """What online feedback moves: the selector heads and the scorer, never the shared encoder (through it,
        a scorer step moved the policy's inputs and a rating could lower its decision's probability)."""
        heads = (
            self.model_selector,
            self.layer_selector,
            self.strategy_selector,
            self.param_predictor,
            self.scorer,
        )
        return [p for module in heads for p in module.parameters()]

    def heads(self, t: torch.Tensor, m: torch.Tensor, pool_mask: torch.Tensor) -> DecisionLogits:
        """The selector heads on the encoded task token t (B, D) and model tokens m (B, N, D). Online policy
        updates call this on detached tokens: the policy gradient moves the heads, never the encoder the
        scorer reads (``meta.learn.Feedback``)."""
        sel = self.model_selector(m).masked_fill(~pool_mask[..., None], NEG)  # (B, N, 2)
        s = self.space
        lay = self.layer_selector(t)
        par = self.param_predictor(t)
        nd, ns = len(s.fusion_dims), len(s.steps)
        return DecisionLogits(
            include=sel[..., 0], anchor=sel[..., 1],
            points=lay[:, : len(s.fusion_points)], placement=lay[:, len(s.fusion_points) :],
            strategy=self.strategy_selector(t), fusion_dim=par[:, :nd], steps=par[:, nd : nd + ns],
            continuous=torch.sigmoid(par[:, nd + ns :]), task_state=t, model_states=m,
        )  # fmt: skip

    def score(self, out: DecisionLogits, members: torch.Tensor, anchor: torch.Tensor, config: torch.Tensor):
        """Predicted (score, log decode ms, log memory MB) of candidates.

        members (B, C, N) 0/1, anchor (B, C, N) one-hot, config (B, C, candidate_dim) -> (B, C, 3)."""
        m = out.model_states  # (B, N, D)
        pooled = members @ m / members.sum(-1, keepdim=True).clamp(min=1)  # (B, C, D)
        anchor_state = anchor @ m  # (B, C, D)
        task = out.task_state[:, None].expand(-1, members.shape[1], -1)  # (B, C, D)
        return self.scorer(torch.cat([task, pooled, anchor_state, config], -1))
