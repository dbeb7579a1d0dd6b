"""Choosing between a bridged member's readings of the text, per position.

A WordPiece member drops the whitespace between words, so the bridge reads its new-word tokens twice: with
" " before them and without (``CharBridge.readings``). Which one is right depends on the text (a space
after "is", none after "(" or inside "3.5"), and the anchor knows it better than the member. Mixing the
two as separate components wastes mass on the wrong one wherever the router cannot tell them apart (facts
own-domain, both readings evenly: 2.45 per char against the member's 1.93; a fixed rule, "space after a
full stop", 1.78). So each such member gets a softmax over its readings that reads the anchor's final
state, the anchor's and each reading's confidence, and each reading's agreement with the anchor. It is
zero-initialised (an even split), and trained on the selected distribution's own likelihood as well as
through the mixture: the mixture passes no gradient while the member's weight is still 0.
"""

from __future__ import annotations

import torch
from torch import nn

from braid.fusion.dists import MemberDists, agreement, confidence_features, zero_linear


class ReadingSelector(nn.Module):
    """``readings[m]`` distributions per non-anchor member m (1 for most) -> one distribution per member."""

    def __init__(self, anchor_dim: int, readings: list[int]):
        super().__init__()
        self.readings = list(readings)
        self.select = nn.ModuleDict(
            {str(m): zero_linear(anchor_dim + 2 + 3 * r, r) for m, r in enumerate(readings) if r > 1}
        )

    @property
    def selected(self) -> list[int]:
        """The members whose distribution is a learned choice between readings."""
        return [int(m) for m in self.select]

    def forward(self, h: torch.Tensor, dists: MemberDists, anchor_probs: torch.Tensor) -> MemberDists:
        """h: (B, T, D_a) normalised anchor states; dists: (B, C, T, V) with C = sum(readings) components,
        ordered by member then reading -> (B, M, T, V)."""
        if not self.select:
            return dists
        anchor_conf = confidence_features(anchor_probs)  # (B, T, 2)
        probs, valid, start = [], [], 0
        for m, r in enumerate(self.readings):
            q, ok = dists.probs[:, start : start + r], dists.valid[:, start : start + r]  # (B, R, T, V)
            start += r
            if r == 1:
                probs.append(q[:, 0])
                valid.append(ok[:, 0])
                continue
            b, _, t, _ = q.shape
            conf = MemberDists(q, ok).confidence().permute(0, 2, 1, 3).reshape(b, t, 2 * r)  # (B, T, 2R)
            agree = agreement(q, anchor_probs, ok).transpose(1, 2)  # (B, T, R)
            logits = self.select[str(m)](torch.cat([h, anchor_conf, conf, agree], -1)).transpose(1, 2)
            # A reading without a distribution gets no share; with none at all, the member is invalid anyway.
            share = torch.softmax(logits.masked_fill(~ok, -1e9), 1)  # (B, R, T)
            probs.append((share.unsqueeze(-1) * q).sum(1))
            valid.append(ok.any(1))
        return MemberDists(torch.stack(probs, 1), torch.stack(valid, 1))
