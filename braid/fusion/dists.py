"""Members' next-token distributions in the anchor's vocabulary, and the small helpers every output-level
strategy (and ``braid.readout``, which builds the distributions) reads them with."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class MemberDists:
    """The components' next-token distributions in the anchor's vocabulary at each anchor position."""

    probs: torch.Tensor  # (B, C, T, V), each row summing to 1 where valid
    valid: torch.Tensor  # (B, C, T) bool: the component has a distribution at this anchor position
    # (B, C, T, FEATURES): how each predicted the text so far (``braid.fusion.evidence``), for strategies
    # that read it (``OutputFusion.reads_evidence``)
    evidence: torch.Tensor | None = None

    def confidence(self) -> torch.Tensor:
        """(B, C, T, 2) features a router can read cheaply: top-1 log-probability and entropy, both in
        units of log V so they sit in [-1, 1] whatever the vocabulary (raw nats would dwarf the
        normalised anchor state next to them and make the router's steps erratic)."""
        feats = confidence_features(self.probs)
        return feats * self.valid.unsqueeze(-1).to(feats.dtype)


def confidence_features(probs: torch.Tensor) -> torch.Tensor:
    """(..., V) distributions -> (..., 2): top-1 log-probability and entropy, in units of log V."""
    p = probs.clamp(min=1e-12)
    feats = torch.stack([p.amax(-1).log(), -(probs * p.log()).sum(-1)], -1)
    return feats / math.log(probs.shape[-1])


def agreement(probs: torch.Tensor, anchor_probs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, C, T): the log of the mass each component shares with the anchor (sum_v p_a q_c), in units of
    log V; 0 where the component has no distribution."""
    shared = (probs * anchor_probs.unsqueeze(1)).sum(-1).clamp(min=1e-12)  # (B, C, T)
    return (shared.log() / math.log(anchor_probs.shape[-1])) * valid


def top_k_dists(log_probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., V) log-probabilities -> the k most likely (ids, probs), most likely first."""
    values, ids = log_probs.topk(min(k, log_probs.shape[-1]), dim=-1)
    return ids, values.exp()


def from_top_k(ids: torch.Tensor, probs: torch.Tensor, anchor_probs: torch.Tensor) -> torch.Tensor:
    """Top-k entries (..., K) as a full distribution (..., V): the mass they leave is spread like the
    anchor's own distribution (``anchor_probs``, (..., V)), so it never rules out a token the anchor writes."""
    rest = 1.0 - probs.sum(-1, keepdim=True)
    rest = torch.where(rest > 1e-6, rest, 0.0)  # a normalised distribution's rounding is not mass
    return (rest * anchor_probs).scatter_add(-1, ids, probs)


def zero_linear(d_in: int, d_out: int) -> nn.Linear:
    layer = nn.Linear(d_in, d_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def scaled_init(layer: nn.Linear) -> nn.Linear:
    nn.init.normal_(layer.weight, std=1.0 / math.sqrt(layer.in_features))
    return layer
