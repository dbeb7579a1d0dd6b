"""router: a per-token softmax gate over members, computed from all members' projected states."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from braid.fusion.base import FusionModule, StrategyParams, masked_softmax


class RouterParams(StrategyParams):
    temperature: float = 1.0


class RouterFusion(FusionModule):
    name = "router"
    Params = RouterParams

    def __init__(
        self, member_dims: list[int], fusion_dim: int, params: RouterParams | None = None, receivers=None
    ):
        super().__init__(member_dims, fusion_dim, params, receivers)
        m = len(member_dims)
        self.router = nn.Linear(m * fusion_dim, m)
        # Start from a uniform gate so no member is preferred before training.
        nn.init.zeros_(self.router.weight)
        nn.init.zeros_(self.router.bias)

    def mix(self, z: torch.Tensor, valid: torch.Tensor | None, cache: dict[str, Any] | None) -> torch.Tensor:
        b, m, t, f = z.shape
        tokens = z.permute(0, 2, 1, 3).reshape(b, t, m * f)  # (B, T, M*F)
        logits = self.router(tokens).transpose(1, 2) / self.params.temperature  # (B, M, T)
        g = masked_softmax(logits, valid, dim=1)
        return (g.unsqueeze(-1) * z).sum(1, keepdim=True)  # (B, 1, T, F)
