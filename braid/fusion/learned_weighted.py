"""learned_weighted: fused = sum_i softmax(w)_i * P_i(h_i), one learned weight per member and point."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from braid.fusion.base import FusionModule, masked_softmax


class LearnedWeightedFusion(FusionModule):
    name = "learned_weighted"

    def __init__(self, member_dims: list[int], fusion_dim: int, params=None, receivers=None):
        super().__init__(member_dims, fusion_dim, params, receivers)
        self.weights = nn.Parameter(torch.zeros(len(member_dims)))

    def mix(self, z: torch.Tensor, valid: torch.Tensor, cache: dict[str, Any] | None) -> torch.Tensor:
        logits = self.weights.view(1, -1, 1).expand_as(valid)  # (B, M, T)
        w = masked_softmax(logits, valid, dim=1)  # renormalised over the members present at each position
        return (w.unsqueeze(-1) * z).sum(1, keepdim=True)  # (B, 1, T, F)
