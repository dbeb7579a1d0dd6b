"""Position alignment between the anchor's tokens and each member's (DESIGN.md decision 3).

Fusion runs in the anchor's token positions. Anchor token t sees member m's last token whose text ends at or
before t's end; member token s receives from the anchor's last token ending at or before s's end. A position
with nothing to see gets a masked, zero contribution. Members sharing the anchor's tokenizer use the
identity map, which skips the gathers entirely.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def causal_index(query_ends: torch.Tensor, key_ends: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query end, the index of the last key ending at or before it. (B, Tq) -> index, valid.

    key_ends must be non-decreasing along the last dim (token end offsets are).
    """
    idx = torch.searchsorted(key_ends.contiguous(), query_ends.contiguous(), right=True) - 1
    return idx.clamp(min=0), idx >= 0


@dataclass
class Alignment:
    """Index maps for one chunk of a batch. ``None`` maps mean identity (shared tokenizer)."""

    to_anchor: list[torch.Tensor | None]  # per member: (B, T_anchor) indices into the member's positions
    to_anchor_valid: list[torch.Tensor | None]  # per member: (B, T_anchor) bool, None = all valid
    from_anchor: list[torch.Tensor | None]  # per member: (B, T_member) indices into the anchor's positions
    from_anchor_valid: list[torch.Tensor | None]  # per member: (B, T_member) bool

    @classmethod
    def identity(cls, attention_mask: torch.Tensor | None, num_members: int) -> Alignment:
        """Shared tokenizer: position t is position t everywhere; padding (mask 0) is invalid for all."""
        valid = None if attention_mask is None or bool(attention_mask.all()) else attention_mask.bool()
        return cls([None] * num_members, [valid] * num_members, [None] * num_members, [None] * num_members)

    @property
    def valid(self) -> torch.Tensor | None:
        """(B, M, T_anchor): which member has a state at each anchor position; None when all do."""
        if all(v is None for v in self.to_anchor_valid):
            return None
        shape = next(v for v in self.to_anchor_valid if v is not None).shape
        return torch.stack(
            [torch.ones(shape, dtype=torch.bool) if v is None else v for v in self.to_anchor_valid], 1
        )

    def gather_to_anchor(self, m: int, h: torch.Tensor) -> torch.Tensor:
        """(B, T_m, D) member states -> (B, T_anchor, D) in the anchor frame."""
        idx = self.to_anchor[m]
        if idx is None:
            return h
        out = _gather(h, idx.to(h.device))
        valid = self.to_anchor_valid[m]
        return out if valid is None else out * valid.to(h.device).unsqueeze(-1)

    def scatter_from_anchor(self, m: int, u: torch.Tensor) -> torch.Tensor:
        """(B, T_anchor, D) updates -> (B, T_m, D) in member m's frame."""
        idx = self.from_anchor[m]
        if idx is None:
            return u
        return _gather(u, idx.to(u.device)) * self.from_anchor_valid[m].to(u.device).unsqueeze(-1)


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
