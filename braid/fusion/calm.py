"""calm: CALM-style composition (Bansal et al., 2024): the anchor attends to what the members compute.

For skills where the anchor must compute on what a member knows (adding two numbers only a member can look
up), output mixing is not enough: the member's knowledge has to enter the anchor's stream early enough for
the anchor's own layers to use it. Unlike ``attention`` (members attend to each other, queries from the
projected states, a same-position bonus only), this is CALM's shape:

- one-way: only the anchor receives updates, at every fusion point;
- queries from the anchor's full width (its whole state, not the fusion projection);
- keys and values from the other members' states at every position up to the anchor's;
- positions encoded: a learned bias per head and relative offset (bucketed beyond ``window``), started in
  favour of the current position;
- zero-initialised output (the gate): an untrained braid is exactly its anchor.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from braid.fusion.base import FusionModule, HeadsParams


class CalmParams(HeadsParams):
    window: int = Field(default=64, ge=1, description="offsets with their own bias; farther ones share one")


class CalmFusion(FusionModule):
    name = "calm"
    Params = CalmParams
    one_way = True  # the braid passes [anchor] as receivers at every point

    def __init__(
        self, member_dims: list[int], fusion_dim: int, params: CalmParams | None = None, receivers=None
    ):
        super().__init__(member_dims, fusion_dim, params, receivers)
        if fusion_dim % self.params.num_heads:
            raise ValueError(f"fusion_dim={fusion_dim} is not divisible by num_heads={self.params.num_heads}")
        (self.anchor,) = self.receivers
        # The anchor is read at full width by the query, never through the shared projection.
        self.norms[self.anchor], self.down[self.anchor] = nn.Identity(), nn.Identity()
        self.query_norm = nn.RMSNorm(member_dims[self.anchor])
        self.q = nn.Linear(member_dims[self.anchor], fusion_dim, bias=False)
        self.kv = nn.Linear(fusion_dim, 2 * fusion_dim, bias=False)
        self.o = nn.Linear(fusion_dim, fusion_dim, bias=False)
        bias = torch.zeros(self.params.num_heads, self.params.window + 1)
        bias[:, 0] = 2.0
        self.offset_bias = nn.Parameter(bias)  # (H, window + 1): offsets 0..window-1, then "farther"

    def forward(
        self,
        states: list[torch.Tensor],
        valid: torch.Tensor | None = None,
        cache: dict[str, Any] | None = None,
    ) -> list[torch.Tensor | None]:
        """states[i]: (B, T, D_i) in the anchor frame. Returns the anchor's update; None for the others."""
        others = [i for i in range(self.num_members) if i != self.anchor]
        valid = None if valid is None else valid[:, others]
        z = self.project(states, others, valid)  # (B, M', T, F)
        q = self.q(self.query_norm(states[self.anchor]))  # (B, T, F): the anchor's full state asks
        mixed = self._attend(q, z, valid, cache)  # (B, T, F)
        updates: list[torch.Tensor | None] = [None] * self.num_members
        updates[self.anchor] = torch.tanh(self.gate[0]) * self.up[0](mixed)
        return updates

    def _attend(
        self, q: torch.Tensor, z: torch.Tensor, valid: torch.Tensor | None, cache: dict[str, Any] | None
    ) -> torch.Tensor:
        b, m, t, f = z.shape
        h = self.params.num_heads
        kv = self.kv(z)  # (B, M', T, 2F): keys and values cached together, one concatenation per step
        past = 0
        if cache is not None:
            if "kv" in cache:
                past = cache["kv"].shape[2]
                kv = torch.cat([cache["kv"], kv], 2)
                valid = _join(cache.get("valid"), valid, (b, m, past), (b, m, t), z.device)
            cache.update(kv=kv, valid=valid)
        s = past + t
        keys, values = kv.view(b, m * s, 2 * h, f // h).transpose(1, 2).chunk(2, 1)  # (B, H, M'*S, Dh)
        query = q.view(b, t, h, f // h).transpose(1, 2)  # (B, H, T, Dh)
        bias = self._bias(valid, m, t, s, past, q.dtype)  # (B|1, H, T, M'*S)
        out = F.scaled_dot_product_attention(query, keys, values, attn_mask=bias)  # (B, H, T, Dh)
        if valid is not None:  # a query whose visible keys are all invalid gets no update, not NaN
            out = torch.where(torch.isinf(bias).all(-1, keepdim=True), 0.0, out)
        return self.o(out.transpose(1, 2).reshape(b, t, f))

    def _bias(
        self, valid: torch.Tensor | None, m: int, t: int, s: int, past: int, dtype: torch.dtype
    ) -> torch.Tensor:
        """(B|1, H, T, M'*S): the offset bias where a key is at or before the query, -inf elsewhere.

        Every query sees at least its own position, so without ``valid`` no row is all -inf."""
        dev = self.offset_bias.device
        decoding = (
            t == 1 and valid is None and not (torch.is_grad_enabled() and self.offset_bias.requires_grad)
        )
        if decoding:  # one decode step without gradients: every key is at or before the query
            bias = self._decode_bias(s, dtype)  # (H, S)
            return bias.view(1, -1, 1, s) if m == 1 else bias.repeat(1, m).view(1, -1, 1, m * s)
        offset = past + torch.arange(t, device=dev).view(t, 1) - torch.arange(s, device=dev).view(1, s)
        bucket = offset.clamp(0, self.params.window)  # (T, S)
        bias = self.offset_bias[:, bucket].to(dtype)  # (H, T, S)
        allowed = (offset >= 0).view(1, 1, t, 1, s)
        if valid is not None:
            allowed = allowed & valid.view(valid.shape[0], 1, 1, m, s)
        full = bias.view(1, -1, t, 1, s).expand(allowed.shape[0], -1, t, m, s)
        return torch.where(allowed, full, float("-inf")).reshape(allowed.shape[0], -1, t, m * s)

    def _decode_bias(self, s: int, dtype: torch.dtype) -> torch.Tensor:
        """(H, S): the bias of keys 0..S-1 for a query at S-1, a slice of one table per module.

        A decode step would otherwise index the bias anew for every key; the table holds offsets
        L-1..0 left to right, so the last S columns are this step's, and it is rebuilt only when the bias
        is trained (its version moves) or a sequence outgrows it."""
        table, version = getattr(self, "_table", None), self.offset_bias._version
        stale = table is None or (table.device, table.dtype) != (self.offset_bias.device, dtype)
        if stale or table.shape[1] < s or self._table_version != version:
            length = max(s, 2 * (0 if table is None else table.shape[1]), 256)
            offsets = torch.arange(length - 1, -1, -1, device=self.offset_bias.device)  # L-1 .. 0
            table = self.offset_bias.detach()[:, offsets.clamp(max=self.params.window)].to(dtype)
            self._table, self._table_version = table, version
        return table[:, table.shape[1] - s :]


def _join(past: torch.Tensor | None, new: torch.Tensor | None, past_shape: tuple, new_shape: tuple, device):
    if past is None and new is None:
        return None
    past = torch.ones(past_shape, dtype=torch.bool, device=device) if past is None else past
    new = torch.ones(new_shape, dtype=torch.bool, device=device) if new is None else new
    return torch.cat([past, new], 2)
