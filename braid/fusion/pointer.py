"""pointer: attend over the members' recent positions and copy their next-token distributions there.

A member often knows the answer at another position than where the anchor writes it: a digit expert
predicts the digit right after ``=``, while the anchor needs it two tokens later. The pointer's query is the
anchor's final state at t; its keys are the anchor's states at the positions s of the last ``window``,
one per member (plus a member embedding and that member's confidence at s); its values are the members'
frozen next-token distributions at s. A learned bias per relative offset t - s starts at +2 for offset 0,
so an untrained pointer looks at the current position first. The result is one more component mixed
with the anchor's distribution by a zero-started gate: an untrained braid is exactly its anchor.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import Field
from torch import nn

from braid.fusion.dists import MemberDists, scaled_init, zero_linear
from braid.fusion.output import OutputFusion, OutputParams


class PointerParams(OutputParams):
    window: int = Field(default=32, ge=1, description="how many recent positions (the current one included)")


class PointerFusion(OutputFusion):
    name = "pointer"
    Params = PointerParams
    trains_components = True

    def __init__(
        self,
        anchor_dim: int,
        num_members: int,
        fusion_dim: int,
        params: PointerParams | None = None,
        readings: list[int] | None = None,
    ):
        super().__init__(anchor_dim, num_members, fusion_dim, params, readings)
        self.query = scaled_init(nn.Linear(anchor_dim, fusion_dim, bias=False))
        self.key = scaled_init(nn.Linear(anchor_dim, fusion_dim, bias=False))
        self.member_key = nn.Parameter(torch.zeros(num_members, fusion_dim))
        self.confidence_key = nn.Linear(2, fusion_dim, bias=False)
        nn.init.zeros_(self.confidence_key.weight)
        offset = torch.zeros(self.params.window)
        offset[0] = 2.0
        self.offset_bias = nn.Parameter(offset)
        self.gate_proj = zero_linear(anchor_dim, 1)
        self.gate = nn.Parameter(torch.zeros(1))

    def components(
        self, h: torch.Tensor, dists: MemberDists, anchor_probs: torch.Tensor, cache: dict[str, Any] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys = self.key(h).unsqueeze(1) + self.member_key.view(1, -1, 1, self.fusion_dim)  # (B, C, T, F)
        keys = keys + self.confidence_key(dists.confidence())
        new = {"keys": keys, "probs": dists.probs, "valid": dists.valid}
        seen, past = _with_cache(cache, new, self.params.window)
        a = self._attention(self.query(h), past, seen["keys"], seen["valid"])  # (B, C, T, S)
        q = torch.einsum("bcts,bcsv->btv", a, seen["probs"])  # (B, T, V)
        q = q + (1.0 - a.sum((1, 3))).unsqueeze(-1) * anchor_probs  # nothing to attend to: the anchor's
        g = (self.gate_proj(h).squeeze(-1) + self.gate).unsqueeze(1)  # (B, 1, T)
        return q.unsqueeze(1), g

    def _attention(
        self, query: torch.Tensor, past: int, keys: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """(B, C, T, S) weights over components and the last ``window`` positions, summing to 1, or to 0
        where there is nothing to attend to."""
        b, t, f = query.shape
        c, s = keys.shape[1], keys.shape[2]
        offset = past + torch.arange(t, device=query.device).view(t, 1) - torch.arange(s, device=query.device)
        inside = (offset >= 0) & (offset < self.params.window)  # (T, S)
        bias = self.offset_bias[offset.clamp(0, self.params.window - 1)]  # (T, S)
        scores = torch.einsum("btf,bcsf->bcts", query, keys) / math.sqrt(f) + bias  # (B, C, T, S)
        allowed = inside.view(1, 1, t, s) & valid.view(b, c, 1, s)
        scores = scores.masked_fill(~allowed, float("-inf"))
        flat = scores.permute(0, 2, 1, 3).reshape(b, t, c * s)
        a = torch.nan_to_num(torch.softmax(flat, -1), nan=0.0)  # rows with nothing allowed: all zero
        return a.view(b, t, c, s).permute(0, 2, 1, 3)


def _with_cache(
    cache: dict[str, Any] | None, new: dict[str, torch.Tensor], window: int
) -> tuple[dict[str, torch.Tensor], int]:
    """The cached positions followed by the new ones (position axis 2), and how many were cached. The cache
    then keeps only the last ``window - 1`` positions: no later query looks further back."""
    if cache is None:
        return new, 0
    past = cache["keys"].shape[2] if cache else 0
    seen = {k: torch.cat([cache[k], v], 2) for k, v in new.items()} if past else new
    cache.update({k: v[:, :, max(v.shape[2] - (window - 1), 0) :] for k, v in seen.items()})
    return seen, past
