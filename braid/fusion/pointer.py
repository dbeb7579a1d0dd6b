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

from braid.fusion.output import MemberDists, OutputFusion, OutputParams, scaled_init, zero_linear


class PointerParams(OutputParams):
    window: int = Field(default=32, ge=1, description="how many recent positions (the current one included)")


class PointerFusion(OutputFusion):
    name = "pointer"
    Params = PointerParams
    trains_components = True

    def __init__(
        self, anchor_dim: int, num_members: int, fusion_dim: int, params: PointerParams | None = None
    ):
        super().__init__(anchor_dim, num_members, fusion_dim, params)
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
        keys = self.key(h).unsqueeze(1) + self.member_key.view(1, -1, 1, self.fusion_dim)  # (B, M, T, F)
        new = {"keys": keys + self.confidence_key(dists.confidence()), "ids": dists.ids, "probs": dists.probs}
        new["valid"] = dists.valid
        seen, past = _with_cache(cache, new, self.params.window)
        a = self._attention(self.query(h), past, seen["keys"], seen["valid"])  # (B, M, T, W)
        q = self._values(a, seen["ids"], seen["probs"], past, anchor_probs)  # (B, T, V)
        g = (self.gate_proj(h).squeeze(-1) + self.gate).unsqueeze(1)  # (B, 1, T)
        return q.unsqueeze(1), g

    def _window_index(self, t: int, past: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(T, W) key index for each query and offset (clamped), and whether it exists."""
        offsets = torch.arange(self.params.window, device=device)
        idx = past + torch.arange(t, device=device).view(-1, 1) - offsets.view(1, -1)
        return idx.clamp(min=0), idx >= 0

    def _attention(
        self, query: torch.Tensor, past: int, keys: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """(B, M, T, W) weights over members and offsets, summing to 1 or 0 (nothing to attend to)."""
        b, t, f = query.shape
        m = keys.shape[1]
        idx, exists = self._window_index(t, past, query.device)  # (T, W)
        keys = keys[:, :, idx]  # (B, M, T, W, F)
        scores = (keys * query.view(b, 1, t, 1, f)).sum(-1) / math.sqrt(f) + self.offset_bias  # (B, M, T, W)
        allowed = valid[:, :, idx] & exists  # (B, M, T, W)
        scores = scores.masked_fill(~allowed, float("-inf"))
        flat = scores.permute(0, 2, 1, 3).reshape(b, t, m * idx.shape[1])
        a = torch.nan_to_num(torch.softmax(flat, -1), nan=0.0)  # rows with nothing allowed: all zero
        return a.view(b, t, m, -1).permute(0, 2, 1, 3)

    def _values(
        self, a: torch.Tensor, ids: torch.Tensor, probs: torch.Tensor, past: int, anchor_probs: torch.Tensor
    ) -> torch.Tensor:
        """Sum of the attended top-k entries; the attended residual mass (and any weight left unused) follows
        the anchor's distribution at the query position."""
        b, m, t, w = a.shape
        idx, _ = self._window_index(t, past, a.device)
        top_ids, top_p = ids[:, :, idx], probs[:, :, idx]  # (B, M, T, W, K)
        weighted = a.unsqueeze(-1) * top_p
        rest = 1.0 - weighted.sum((1, 3, 4))  # (B, T)
        out = rest.unsqueeze(-1) * anchor_probs
        flat_ids = top_ids.permute(0, 2, 1, 3, 4).reshape(b, t, -1)
        return out.scatter_add(-1, flat_ids, weighted.permute(0, 2, 1, 3, 4).reshape(b, t, -1))


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
