"""attention: causal cross-attention, CALM-style, from each member to the other members' sequences.

Every query position of member i attends to every valid position of every other member at or before it,
with a learned per-head bonus for the aligned position itself, plus a null slot (zero logit, zero value) so a position may also attend to nothing. During generation the
keys and values of earlier positions live in the per-point cache.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import field_validator
from torch import nn

from braid.fusion.base import FusionModule, StrategyParams


class AttentionParams(StrategyParams):
    num_heads: int = 4

    @field_validator("num_heads")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("num_heads must be >= 1")
        return v


class AttentionFusion(FusionModule):
    name = "attention"
    Params = AttentionParams

    def __init__(
        self, member_dims: list[int], fusion_dim: int, params: AttentionParams | None = None, receivers=None
    ):
        super().__init__(member_dims, fusion_dim, params, receivers)
        if fusion_dim % self.params.num_heads:
            raise ValueError(f"fusion_dim={fusion_dim} is not divisible by num_heads={self.params.num_heads}")
        self.q = nn.Linear(fusion_dim, fusion_dim, bias=False)
        self.kv = nn.Linear(fusion_dim, 2 * fusion_dim, bias=False)
        self.o = nn.Linear(fusion_dim, fusion_dim, bias=False)
        # Keys carry no position: a learned per-head bonus, started in favour of the aligned position,
        # lets heads find the current token (training may move it anywhere).
        self.same_position = nn.Parameter(torch.full((self.params.num_heads,), 2.0))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, m, t, f = x.shape
        h = self.params.num_heads
        return x.view(b, m, t, h, f // h).transpose(2, 3)  # (B, M, H, T, Dh)

    def mix(self, z: torch.Tensor, valid: torch.Tensor | None, cache: dict[str, Any] | None) -> torch.Tensor:
        b, m, t, f = z.shape
        q = self._heads(self.q(z))  # (B, M, H, T, Dh)
        k, v = (self._heads(x) for x in self.kv(z).chunk(2, dim=-1))  # (B, M, H, T, Dh) each
        dense = valid is None
        valid_kv = valid if valid is not None else torch.ones(b, m, t, dtype=torch.bool, device=z.device)
        past = 0
        if cache is not None:
            if "k" in cache:
                past = cache["k"].shape[3]
                k, v = torch.cat([cache["k"], k], 3), torch.cat([cache["v"], v], 3)
                valid_kv = torch.cat([cache["valid"], valid_kv], 2)
                dense = dense and cache["dense"]
            cache.update(k=k, v=v, valid=valid_kv, dense=dense)
        s = k.shape[3]
        scores = torch.einsum("bihtd,bjhsd->bihtjs", q, k) / (f // self.params.num_heads) ** 0.5
        scores = self._add_same_position(scores, t, s, past)
        flat = scores.masked_fill(~self._allowed(valid_kv, dense, m, t, s, past), float("-inf")).flatten(-2)
        null = flat.new_zeros(flat.shape[:-1] + (1,))  # the "attend to nothing" slot
        probs = torch.softmax(torch.cat([flat, null], -1), -1)[..., :-1].unflatten(-1, (m, s))
        out = torch.einsum("bihtjs,bjhsd->bihtd", probs, v)  # (B, M, H, T, Dh)
        return self.o(out.transpose(2, 3).reshape(b, m, t, f))

    def _add_same_position(self, scores: torch.Tensor, t: int, s: int, past: int) -> torch.Tensor:
        """Add the per-head bonus where key position == query position. scores: (B, M, H, T, M, S)."""
        bonus = self.same_position.view(1, 1, -1, 1, 1)
        if t == 1:  # decoding: the query is the newest key position
            return torch.cat([scores[..., :-1], scores[..., -1:] + bonus.unsqueeze(-1)], -1)
        here = torch.arange(s, device=scores.device).view(1, s) == (
            past + torch.arange(t, device=scores.device)
        ).view(t, 1)
        return scores + bonus.unsqueeze(-1) * here.view(1, 1, 1, t, 1, s)

    @staticmethod
    def _allowed(valid_kv: torch.Tensor, dense: bool, m: int, t: int, s: int, past: int) -> torch.Tensor:
        """(B|1, M, 1, T|1, M, S|1) bool: other members only, at or before the query, where valid."""
        dev = valid_kv.device
        allowed = ~torch.eye(m, dtype=torch.bool, device=dev).view(
            1, m, 1, 1, m, 1
        )  # never attend to oneself
        if t > 1:  # a single new token may see every cached position
            causal = torch.arange(s, device=dev).view(1, s) <= (past + torch.arange(t, device=dev)).view(t, 1)
            allowed = allowed & causal.view(1, 1, 1, t, 1, s)
        if not dense:
            allowed = allowed & valid_kv.view(valid_kv.shape[0], 1, 1, 1, m, s)
        return allowed
