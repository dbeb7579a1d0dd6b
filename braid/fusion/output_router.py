"""output_router: per-token weights over the anchor's and each member's own next-token distribution.

Two parts, because "how much to trust the members at all" and "which source writes this text" are
different questions:

- a **switch** ``s`` in [0, 1], zero-initialised, so an untrained braid is exactly its anchor;
- a **competition**: a softmax over the anchor (logit 0) and the members. A member's logit is the log-odds
  that it, not the anchor, writes this text (its decayed log-likelihood sums against the anchor,
  ``braid.fusion.evidence.log_evidence``, scaled per rate and learned from 1, a posterior's own weight)
  plus a learned term that reads the anchor's final state, how confident the anchor and each member are
  (top-1 log-probability and entropy), how much each member agrees with the anchor, and the evidence
  averages. The learned term is what decides where a text starts, before there is evidence to read.

A member's weight is ``s * share``. Independent weights per member, each in [0, 1] (this strategy's first
form), made members compete only once their sum passed 1: with four members, a code member that predicts
facts text better than the prose anchor kept ~5% of the weight there and cost facts 1.03x its member. In a
softmax a member loses its share to whichever source has predicted the text better, the facts member
included (facts 0.98x in the same braid, seed 0).
"""

from __future__ import annotations

from typing import Any

import torch

from braid.fusion.dists import MemberDists, agreement, confidence_features, zero_linear
from braid.fusion.evidence import FEATURES, RATES, log_evidence
from braid.fusion.output import OutputFusion, OutputParams, box


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
        width = anchor_dim + 2 + (3 + FEATURES) * num_members
        self.router = zero_linear(width, num_members)  # the members' learned logits (the anchor's is 0)
        self.switch = zero_linear(width, 1)
        # The switch's offset: named "gate" so training gives it the gates' learning rate.
        self.gate = torch.nn.Parameter(torch.zeros(1))
        self.evidence_scale = torch.nn.Parameter(torch.ones(len(RATES)))  # 1: a posterior's log-odds

    def components(
        self, h: torch.Tensor, dists: MemberDists, anchor_probs: torch.Tensor, cache: dict[str, Any] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, m, t, v = dists.probs.shape
        conf = dists.confidence().permute(0, 2, 1, 3).reshape(b, t, 2 * m)  # (B, T, 2M)
        agree = agreement(dists.probs, anchor_probs, dists.valid)  # (B, M, T)
        evidence = dists.evidence
        if evidence is None:  # no tokens to judge the members by
            evidence = torch.zeros(b, m, t, FEATURES, device=h.device)
        flat = evidence.permute(0, 2, 1, 3).reshape(b, t, m * FEATURES)  # (B, T, M F)
        feats = torch.cat([h, confidence_features(anchor_probs), conf, agree.transpose(1, 2), flat], -1)
        odds = (log_evidence(evidence, v) * self.evidence_scale).sum(-1)  # (B, M, T)
        logits = (self.router(feats).transpose(1, 2) + odds).masked_fill(~dists.valid, -torch.inf)
        anchor = torch.zeros(b, 1, t, device=h.device)
        share = torch.softmax(torch.cat([anchor, logits], 1), 1)[:, 1:]  # (B, M, T)
        s = box(self.switch(feats) + self.gate).transpose(1, 2)  # (B, 1, T)
        return dists.probs, s * share
