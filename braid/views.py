"""Per-member inputs for a batch, and the alignment between them and the anchor's positions.

Members sharing the anchor's tokenizer read the anchor's ids (identity alignment, no extra work). Every
other member reads the anchor's visible text through its own tokenizer, as a ``MemberTree`` per sample,
padded per member and run with a 4D attention mask and explicit position ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from braid.alignment import Alignment, MemberTree, build_member_tree
from braid.tokenview import member_tokenize, pad_id, visible_ends


def sample_trees(
    anchor_tokenizer: Any, member_tokenizer: Any, ids: Sequence[int], use_offsets: bool | None
) -> MemberTree:
    """The member tree of one sample given as anchor ids (padding already removed)."""
    text, ends = visible_ends(anchor_tokenizer, ids)
    growth = [t for t in range(len(ends)) if t == 0 or ends[t] > ends[t - 1]]
    prefixes = member_tokenize(member_tokenizer, [text[: ends[t]] for t in growth], use_offsets)
    return build_member_tree(prefixes, ends, growth)


def collate_trees(
    trees: list[MemberTree], pad_id: int, anchor_len: int
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Pad a member's trees into model inputs (4D mask, position ids) and alignment index tensors."""
    b, width = len(trees), max(max(len(t.ids) for t in trees), 1)
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    pos = torch.zeros((b, width), dtype=torch.long)
    allow = torch.eye(width, dtype=torch.bool).repeat(b, 1, 1)  # padding attends to itself: no empty rows
    sigma = torch.full((b, anchor_len), -1, dtype=torch.long)
    receive = torch.full((b, width), -1, dtype=torch.long)
    for row, tree in enumerate(trees):
        n = len(tree.ids)
        ids[row, :n], pos[row, :n] = torch.tensor(tree.ids, dtype=torch.long), torch.tensor(tree.positions)
        allow[row, :n, :n] = tree.allowed()
        sigma[row, : len(tree.sigma)] = torch.tensor(tree.sigma, dtype=torch.long)
        receive[row, :n] = torch.tensor(tree.receive, dtype=torch.long)
    inputs = {"input_ids": ids, "position_ids": pos, "attention_mask": allow.unsqueeze(1)}
    return inputs, {"sigma": sigma, "receive": receive}


def batch_views(
    braided: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
) -> tuple[list[dict[str, torch.Tensor]], Alignment, dict[int, list[MemberTree]]]:
    """Member inputs, alignment and (for members with their own tokenizer) the trees of a right-padded
    anchor batch (B, T)."""
    n = len(braided.models)
    anchor_inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    alignment = Alignment.identity(attention_mask, n)
    cross = braided.exchange_cross
    absent = braided.cross_members - cross  # read through the bridge only: no part in the pass
    trees_of: dict[int, list[MemberTree]] = {}
    if not cross:
        return [None if m in absent else anchor_inputs for m in range(n)], alignment, trees_of
    lengths = (
        attention_mask.sum(1).tolist()
        if attention_mask is not None
        else [input_ids.shape[1]] * len(input_ids)
    )
    rows = [input_ids[i, : int(k)].tolist() for i, k in enumerate(lengths)]
    anchor_valid = (
        torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    )
    inputs: list[dict[str, torch.Tensor]] = []
    for m, member in enumerate(braided.models):
        if m not in cross:
            inputs.append(None if m in absent else anchor_inputs)
            continue
        tok = member.tokenizer
        trees = trees_of[m] = [sample_trees(braided.tokenizer, tok, row, braided.use_offsets) for row in rows]
        member_inputs, index = collate_trees(trees, pad_id(tok), input_ids.shape[1])
        inputs.append(member_inputs)
        sigma, receive = index["sigma"], index["receive"]
        alignment.to_anchor[m] = sigma.clamp(min=0)
        alignment.to_anchor_valid[m] = (sigma >= 0) & anchor_valid
        alignment.from_anchor[m] = receive.clamp(min=0)
        alignment.from_anchor_valid[m] = receive >= 0
    return inputs, alignment, trees_of
