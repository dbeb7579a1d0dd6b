"""What output-level strategies mix: every member's next-token distribution at the anchor's positions, in
the anchor's vocabulary.

A member sharing the anchor's tokenizer is read directly: its positions are the anchor's and its top-k
ids are anchor ids. A member with its own tokenizer is read through the character-level bridge
(``braid.bridge``), which runs the member itself; a whitespace-lossy member (WordPiece) gives one component
per reading. Components are ordered by member, then reading.
"""

from __future__ import annotations

from typing import Any

import torch

from braid.alignment import Alignment
from braid.fusion.dists import MemberDists, from_top_k, top_k_dists
from braid.fusion.output import OutputParams


def shared_bridge(member: Any, anchor_tokenizer: Any, params: OutputParams):
    """One bridge per (member, anchor tokenizer, settings), kept on the member: braids sharing a member
    share its memoised distributions (the member is frozen, so they stay valid)."""
    from braid.bridge import BridgeParams, CharBridge

    # a bridged member's distribution is kept to its 64 likeliest anchor tokens unless top_k says otherwise:
    # memoised per text for training, (R, T, K) each (same quality on the zoo's domains as 256)
    bridge_params = BridgeParams(**params.bridge.model_dump(), top_k=params.top_k or 64)
    store = member.__dict__.setdefault("_bridges", {})
    key = (id(anchor_tokenizer), bridge_params)
    if key not in store:
        store[key] = CharBridge(member, anchor_tokenizer, bridge_params)
    return store[key]


class Readout:
    def __init__(self, models: list[Any], anchor: int, cross: set[int], params: OutputParams):
        self.anchor, self.params = anchor, params
        self.members = [m for m in range(len(models)) if m != anchor]
        anchor_tok = models[anchor].tokenizer
        self.bridges = {m: shared_bridge(models[m], anchor_tok, params) for m in sorted(cross)}
        self.components = [
            (m, r)
            for m in self.members
            for r in range(len(self.bridges[m].readings) if m in self.bridges else 1)
        ]
        # how many distributions each non-anchor member gives, in member order
        self.readings = [sum(1 for c, _ in self.components if c == m) for m in self.members]

    def text_dists(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Bridged members' distributions for a right-padded batch: m -> (ids, probs), each (B, R, T, K)."""
        b, t = input_ids.shape
        lengths = attention_mask.sum(1).tolist() if attention_mask is not None else [t] * b
        out = {}
        for m, bridge in self.bridges.items():
            k, r = bridge.params.top_k, len(bridge.readings)
            ids = torch.zeros(b, r, t, k, dtype=torch.long)
            probs = torch.zeros(b, r, t, k)
            rows = [input_ids[row, : int(n)].tolist() for row, n in enumerate(lengths)]
            for row, (row_ids, row_probs) in enumerate(bridge.texts_dists(rows)):  # each (R, n, K)
                n = row_ids.shape[1]
                ids[row, :, :n], probs[row, :, :n] = row_ids, row_probs
            out[m] = (ids, probs)
        return out

    def dists(
        self, outs: list[Any], alignment: Alignment, bridged: dict[int, tuple[torch.Tensor, torch.Tensor]]
    ) -> MemberDists:
        """Components' distributions at each anchor position of a braided pass: (B, C, T, V)."""
        anchor = outs[self.anchor].logits
        b, t, vocab = anchor.shape
        anchor_probs = torch.softmax(anchor.float(), -1)  # (B, T, V): where truncated mass goes
        probs, valid = [], []
        for m in self.members:
            if m in self.bridges:
                m_ids, m_probs = (x.to(anchor.device) for x in bridged[m])  # (B, R, T, K)
                m_ids = m_ids.long()
                probs += list(from_top_k(m_ids, m_probs, anchor_probs.unsqueeze(1)).unbind(1))
                valid += list((m_probs.sum(-1) > 0).unbind(1))
                continue
            probs.append(self._shared(outs[m], anchor_probs))
            v = alignment.to_anchor_valid[m]
            valid.append(torch.ones(b, t, dtype=torch.bool, device=anchor.device) if v is None else v.bool())
        return MemberDists(torch.stack(probs, 1), torch.stack(valid, 1).to(anchor.device))

    def _shared(self, out: Any, anchor_probs: torch.Tensor) -> torch.Tensor:
        """(B, T, V) distribution of a member sharing the anchor's tokenizer: its own softmax, or its top-k
        (what a remote member sends when ``top_k`` is set) with the rest spread like the anchor's."""
        vocab = anchor_probs.shape[-1]
        top = getattr(out, "top", None)
        if top is None and self.params.top_k is None:
            probs = torch.softmax(out.logits[..., :vocab].float(), -1).to(anchor_probs.device)
            return torch.nn.functional.pad(probs, (0, vocab - probs.shape[-1]))
        if top is None:
            top = top_k_dists(torch.log_softmax(out.logits[..., :vocab].float(), -1), self.params.top_k)
        return from_top_k(
            top[0].to(anchor_probs.device), top[1].to(anchor_probs.device).float(), anchor_probs
        )
