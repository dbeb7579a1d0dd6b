"""The part every fusion strategy shares: per-member projections into a fusion width and zero-started gates.

A strategy sees the members' hidden states at one fusion point, already aligned to the anchor's token
positions, and returns one update per member. Member i receives ``tanh(gate_i) * up_i(mixed_i)`` added to its
residual stream; the gates start at 0, so an untrained braid is exactly its members.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, field_validator
from torch import nn


class StrategyParams(BaseModel):
    """Strategy-specific settings; subclasses add fields. Unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class HeadsParams(StrategyParams):
    """Settings of the attention-shaped strategies."""

    num_heads: int = 4

    @field_validator("num_heads")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("num_heads must be >= 1")
        return v


class FusionModule(nn.Module):
    """Base class: subclasses implement ``mix`` over projected member states."""

    name: ClassVar[str]
    level: ClassVar[str] = "hidden"
    one_way: ClassVar[bool] = False  # True: only the anchor receives updates, at every fusion point
    Params: ClassVar[type[StrategyParams]] = StrategyParams

    def __init__(
        self,
        member_dims: list[int],
        fusion_dim: int,
        params: StrategyParams | None = None,
        receivers: list[int] | None = None,
    ):
        super().__init__()
        self.member_dims = list(member_dims)
        self.fusion_dim = fusion_dim
        self.params = params or self.Params()
        # Members that get an update here. After a member's last fusion point its stream never reaches the
        # output again, so the last point updates only the anchor.
        self.receivers = list(range(len(member_dims))) if receivers is None else list(receivers)
        # RMSNorm first: member residual streams differ in scale by orders of magnitude.
        self.norms = nn.ModuleList(nn.RMSNorm(d) for d in member_dims)
        self.down = nn.ModuleList(nn.Linear(d, fusion_dim, bias=False) for d in member_dims)
        self.up = nn.ModuleList(nn.Linear(fusion_dim, member_dims[i], bias=False) for i in self.receivers)
        self.gate = nn.Parameter(torch.zeros(len(self.receivers)))

    @property
    def num_members(self) -> int:
        return len(self.member_dims)

    def project(self, states: list[torch.Tensor], members, valid: torch.Tensor | None) -> torch.Tensor:
        """(B, len(members), T, F): the members' normalised, down-projected states, zero where invalid
        (``valid``: (B, len(members), T) or None)."""
        z = [self.down[i](self.norms[i](states[i])) for i in members]
        z = z[0].unsqueeze(1) if len(z) == 1 else torch.stack(z, 1)  # one member: a view, not a copy
        return z if valid is None else z * valid.unsqueeze(-1).to(z.dtype)

    def mix(self, z: torch.Tensor, valid: torch.Tensor | None, cache: dict[str, Any] | None) -> torch.Tensor:
        """z: (B, M, T, F) projected states (zero where invalid); valid: (B, M, T) bool, None if all valid.

        Returns (B, M, T, F), one mixed state per receiving member, or (B, 1, T, F) shared by all.
        """
        raise NotImplementedError

    def forward(
        self,
        states: list[torch.Tensor],
        valid: torch.Tensor | None = None,
        cache: dict[str, Any] | None = None,
    ) -> list[torch.Tensor | None]:
        """states[i]: (B, T, D_i) in the anchor frame; valid: (B, M, T) bool, None when every member has a
        state at every position. Returns updates[i]: (B, T, D_i), None for non-receivers."""
        z = self.project(states, range(self.num_members), valid)  # (B, M, T, F)
        mixed = self.mix(z, valid, cache)
        gates = torch.tanh(self.gate)
        updates: list[torch.Tensor | None] = [None] * self.num_members
        for j, i in enumerate(self.receivers):
            updates[i] = gates[j] * self.up[j](mixed[:, i if mixed.shape[1] > 1 else 0])
        return updates


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    """Softmax over entries where mask is True (all when None); all-masked slices give zeros, not NaN."""
    if mask is None:
        return torch.softmax(logits, dim=dim)
    logits = logits.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(logits, dim=dim)
    return torch.nan_to_num(probs, nan=0.0)
