"""Position alignment between the anchor's tokens and each member's (DESIGN.md decision 3).

Fusion runs in the anchor's token positions. Anchor token t sees member m's last token whose text ends at or
before t's end; member token s receives from the anchor's last token ending at or before s's end. A position
with nothing to see gets a masked, zero contribution. Members sharing the anchor's tokenizer use the
identity map, which skips the gathers entirely.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from braid.tokenview import common_prefix


def last_at_or_before(query_ends: torch.Tensor, key_ends: torch.Tensor) -> torch.Tensor:
    """For each query end, the index of the last key ending at or before it; -1 where there is none.

    key_ends must be non-decreasing along the last dim (token end offsets are).
    """
    return torch.searchsorted(key_ends.contiguous(), query_ends.contiguous(), right=True) - 1


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


@dataclass
class MemberTree:
    """One sample as a member reads it: its final tokenization, then "tails" that exist only in the member's
    tokenization of a shorter prefix (e.g. "hel" before "hello" merges). Tails attend to the final tokens they
    share and to themselves, so one forward computes every state the braid needs.
    """

    ids: list[int]
    positions: list[int]  # position id of each token in its own tokenization
    ends: list[int]  # character end of each token in the visible text
    context: list[int]  # final tokens a tail token may attend to (its shared prefix); final tokens: -1
    tail_start: list[int]  # tree index where a tail token's own tail begins; final tokens: -1
    sigma: list[int]  # per anchor position: tree index of the member's last token then, -1 if none
    receive: list[int]  # per tree token: anchor position whose update it receives, -1 if none
    num_final: int

    def allowed(self) -> torch.Tensor:
        """(L, L) bool attention pattern: causal over the final tokens; a tail sees its prefix and itself."""
        n = len(self.ids)
        allow = torch.zeros(n, n, dtype=torch.bool)
        allow[: self.num_final, : self.num_final] = torch.ones(self.num_final, self.num_final).tril().bool()
        for i in range(self.num_final, n):
            allow[i, : self.context[i]] = True
            allow[i, self.tail_start[i] : i + 1] = True
        return allow


def build_member_tree(
    prefix_tokenizations: list[tuple[list[int], list[int]]], anchor_ends: list[int], growth: list[int]
) -> MemberTree:
    """``prefix_tokenizations[k]`` is the member's (ids, ends) of the visible text at anchor step ``growth[k]``
    (the steps where the visible text grew, the first step included)."""
    final_ids, final_ends = prefix_tokenizations[-1]
    tree = MemberTree(
        ids=list(final_ids), positions=list(range(len(final_ids))), ends=list(final_ends),
        context=[-1] * len(final_ids), tail_start=[-1] * len(final_ids), sigma=[-1] * len(anchor_ends),
        receive=[], num_final=len(final_ids),
    )  # fmt: skip
    fed_steps: list[int] = []  # the anchor step at which generation last fed each token of the tree
    final_tokens = list(zip(final_ids, final_ends, strict=True))
    prev_tokens: list[tuple[int, int]] = []
    prev_fed: list[int] = []
    bounds = [*growth[1:], len(anchor_ends)]
    for (ids, ends), step, stop in zip(prefix_tokenizations, growth, bounds, strict=True):
        tokens = list(zip(ids, ends, strict=True))  # a token is its id and its span: [UNK] can grow
        keep = len(common_prefix(prev_tokens, tokens))  # generation crops its cache here, feeds the rest
        fed = prev_fed[:keep] + [step] * (len(ids) - keep)
        shared = len(common_prefix(tokens, final_tokens))
        if shared < len(ids):  # a tail: tokens of this prefix that the final tokenization does not have
            start = len(tree.ids)
            tree.ids += ids[shared:]
            tree.positions += list(range(shared, len(ids)))
            tree.ends += ends[shared:]
            tree.context += [shared] * (len(ids) - shared)
            tree.tail_start += [start] * (len(ids) - shared)
            fed_steps += fed[shared:]
            last = len(tree.ids) - 1
        else:
            last = len(ids) - 1
        tree.sigma[step:stop] = [last] * (stop - step)
        prev_tokens, prev_fed = tokens, fed
    fed_steps = prev_fed + fed_steps  # final tokens are the last prefix's
    visible = last_at_or_before(torch.tensor(tree.ends), torch.tensor(anchor_ends))
    tree.receive = [min(int(v), f) for v, f in zip(visible, fed_steps, strict=True)]
    return tree
