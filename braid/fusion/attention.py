"""attention: causal cross-attention, CALM-style, from each member to the other members' sequences.

Every query position of member i attends to every valid position of every other member at or before it,
with a learned per-head bonus for the aligned position itself, plus a null slot (zero logit, zero value) so
a position may also attend to nothing. All of it is one ``scaled_dot_product_attention`` call over the
members' positions laid end to end. During generation the keys and values of earlier positions live in the
per-point cache.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from braid.fusion.base import FusionModule, HeadsParams


class AttentionParams(HeadsParams):
    pass


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
        return x.view(b, m, t, h, f // h).permute(0, 3, 1, 2, 4)  # (B, H, M, T, Dh)

    def mix(self, z: torch.Tensor, valid: torch.Tensor | None, cache: dict[str, Any] | None) -> torch.Tensor:
        b, m, t, f = z.shape
        h, past = self.params.num_heads, 0
        q = self._heads(self.q(z))  # (B, H, M, T, Dh)
        k, v = (self._heads(x) for x in self.kv(z).chunk(2, dim=-1))  # (B, H, M, T, Dh) each
        if cache is not None:
            if "k" in cache:
                past = cache["k"].shape[3]
                k, v = torch.cat([cache["k"], k], 3), torch.cat([cache["v"], v], 3)  # (B, H, M, S, Dh)
                valid = _join_valid(cache["valid"], valid, (b, m, past), (b, m, t), z.device)
            cache.update(k=k, v=v, valid=valid)
        s = past + t
        # Every member's positions form one key sequence, plus a zero key and value: the null slot, whose
        # logit is exactly 0, so one fused attention call covers members, mask, bonus and "attend to nothing".
        keys = F.pad(k.reshape(b, h, m * s, -1), (0, 0, 0, 1))  # (B, H, M*S + 1, Dh)
        values = F.pad(v.reshape(b, h, m * s, -1), (0, 0, 0, 1))
        bias = self._bias(valid, m, t, s, past, z.dtype)  # (B|1, H, M*T, M*S + 1)
        out = F.scaled_dot_product_attention(q.reshape(b, h, m * t, -1), keys, values, attn_mask=bias)
        return self.o(out.view(b, h, m, t, -1).permute(0, 2, 3, 1, 4).reshape(b, m, t, f))

    def _bias(
        self, valid: torch.Tensor | None, m: int, t: int, s: int, past: int, dtype: torch.dtype
    ) -> torch.Tensor:
        """(B|1, H, M*T, M*S + 1) additive logits: the per-head bonus where key position == query position,
        -inf for oneself, the future and invalid keys, 0 for the null slot."""
        dev = self.same_position.device
        key, query = torch.arange(s, device=dev), past + torch.arange(t, device=dev)
        here = (key.view(1, s) == query.view(t, 1)).to(dtype)  # (T, S)
        bonus = self.same_position.to(dtype).view(1, -1, 1, 1, 1, 1) * here.view(1, 1, 1, t, 1, s)
        allowed = ~torch.eye(m, dtype=torch.bool, device=dev).view(1, 1, m, 1, m, 1)  # never oneself
        if t > 1:  # a single new token may see every cached position
            allowed = allowed & (key.view(1, s) <= query.view(t, 1)).view(1, 1, 1, t, 1, s)
        if valid is not None:
            allowed = allowed & valid.view(valid.shape[0], 1, 1, 1, m, s)
        bias = torch.where(allowed, bonus, float("-inf")).flatten(-2).flatten(2, 3)  # (B|1, H, M*T, M*S)
        # CUDA's memory-efficient kernel copies a bias whose rows are not 8-aligned: build the rows that
        # wide (zeros past M*S, the first of them the null slot) and hand it a slice.
        width = -(-(m * s + 1) // 8) * 8
        return F.pad(bias, (0, width - m * s))[..., : m * s + 1]


def _join_valid(
    past: torch.Tensor | None, new: torch.Tensor | None, past_shape: tuple, new_shape: tuple, device
) -> torch.Tensor | None:
    """The cached key mask extended by the new positions'; None while every position is valid."""
    if past is None and new is None:
        return None
    past = torch.ones(past_shape, dtype=torch.bool, device=device) if past is None else past
    new = torch.ones(new_shape, dtype=torch.bool, device=device) if new is None else new
    return torch.cat([past, new], 2)  # (B, M, S)
