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

    def mix(self, z: torch.Tensor, valid: torch.Tensor | None, cache: dict[str, Any] | None) -> torch.Tensor:
        if valid is None:
            w = torch.softmax(self.weights, 0).view(1, -1, 1, 1)  # (1, M, 1, 1)
        else:  # renormalised over the members present at each position
            w = masked_softmax(self.weights.view(1, -1, 1).expand_as(valid), valid, dim=1).unsqueeze(-1)
        return (w * z).sum(1, keepdim=True)  # (B, 1, T, F)
