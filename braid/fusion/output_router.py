"""output_router: a per-token weight for each member's own next-token distribution, mixed with the anchor's.

The weights read the anchor's final state, how confident the anchor and each member are at this position
(top-1 log-probability and entropy) and how much each member agrees with the anchor (the log of the
mass they share), so the router can tell "this is code", "the code member is sure" and "the anchor is sure
and the member disagrees" apart: the last is where a member that never saw this kind of text (an
arithmetic expert after "Python 3") would rule out the right token. Zero-initialised: an untrained braid
is exactly its anchor.
"""

from __future__ import annotations

from typing import Any

import torch

from braid.fusion.evidence import FEATURES
from braid.fusion.output import (
    MemberDists,
    OutputFusion,
    OutputParams,
    agreement,
    confidence_features,
    zero_linear,
)


class OutputRouterFusion(OutputFusion):
    name = "output_router"
    Params = OutputParams
    reads_evidence = True

    def __init__(
        self,
        anchor_dim: int,
        num_members: int,
        fusion_dim: int,
        params: OutputParams | None = None,
        readings: list[int] | None = None,
    ):
        super().__init__(anchor_dim, num_members, fusion_dim, params, readings)
        self.router = zero_linear(anchor_dim + 2 + (3 + FEATURES) * num_members, num_members)
        # The weights' common offset: named "gate" so training gives it the gates' learning rate.
        self.gate = torch.nn.Parameter(torch.zeros(num_members))

    def components(
        self, h: torch.Tensor, dists: MemberDists, anchor_probs: torch.Tensor, cache: dict[str, Any] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, m, t, _ = dists.probs.shape
        conf = dists.confidence().permute(0, 2, 1, 3).reshape(b, t, 2 * m)  # (B, T, 2M)
        agree = agreement(dists.probs, anchor_probs, dists.valid)  # (B, M, T)
        evidence = dists.evidence
        if evidence is None:  # no tokens to judge the members by
            evidence = torch.zeros(b, m, t, FEATURES, device=h.device)
        evidence = evidence.permute(0, 2, 1, 3).reshape(b, t, m * FEATURES)  # (B, T, M R)
        feats = [h, confidence_features(anchor_probs), conf, agree.transpose(1, 2), evidence]
        g = (self.router(torch.cat(feats, -1)) + self.gate).transpose(1, 2)  # (B, M, T)
        g = g.masked_fill(~dists.valid, -1.0)  # no distribution there: no weight
        return dists.probs, g
