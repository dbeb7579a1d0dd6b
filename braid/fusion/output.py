"""What every output-level strategy shares: mixing the members' own next-token distributions.

Hidden-state fusion can only reach the logits through the anchor's frozen LM head, which caps what a member's
knowledge can do there (DESIGN.md decision 5). An output-level strategy instead mixes the members'
next-token distributions, mapped into the anchor's vocabulary (``MemberDists``: the top-k entries per
anchor position; a cross-tokenizer member's come from ``braid.bridge``), with the anchor's own:

    p(t) = (1 - sum_c g_c(t)) * p_anchor(t) + sum_c g_c(t) * q_c(t)

Every component weight ``g_c`` starts at exactly 0 and stays in [0, 1] (``box``), their sum at most
``1 - ANCHOR_FLOOR`` (so no member can rule out a token the anchor expects), so an untrained braid
returns the anchor's logits bit for bit. ``mixture_correction`` returns ``log p - log p_anchor``, which the
braid adds to the anchor's raw logits.

A component with trainable content (the pointer's attention) cannot learn through the mixture while its
weight is 0, and its weight only opens once the content is worth it. So in training mode such a component
is also scored on its own (``aux_weight`` times its next-token loss): it learns where the answer is while
the gate learns when to trust it. Evaluation reports the mixture's loss alone.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from braid.fusion.dists import (
    MemberDists,
)
from braid.fusion.evidence import realised_gain
from braid.fusion.readings import ReadingSelector


class BridgeSettings(BaseModel):
    """How members with their own tokenizer are read into the anchor's vocabulary (``braid.bridge``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    beam: int = Field(default=8, ge=1, description="partial paths kept per character position of a word")
    expand: int = Field(default=16, ge=0, description="continuations looked further, per look-ahead step")
    depth: int = Field(default=3, ge=0, description="look-ahead steps, one member token each")
    candidates: int = Field(default=256, ge=1, description="member tokens read from each distribution")
    expand_candidates: int = Field(default=32, ge=1, description="member tokens read in a look-ahead")


class OutputParams(BaseModel):
    """Settings every output-level strategy has; subclasses add fields. Unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    top_k: int | None = Field(
        default=None, ge=1, description="entries of each member's distribution kept; None: all of them"
    )
    aux_weight: float = Field(default=1.0, ge=0, description="weight of trainable components' own loss")
    bridge: BridgeSettings = BridgeSettings()


class _Box(torch.autograd.Function):
    """Clamp to [0, 1]; the gradient passes where the value is inside, or where it points back inside.

    A plain clamp would freeze a weight that stepped below 0 (its gradient is 0 there) and a smooth map
    with f(0) = 0 and f >= 0 must have f'(0) = 0: both would make "exactly the anchor at start" mean "never
    learns". Passing only gradients that point back into the box keeps the weight recoverable without
    letting it drift off.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        # A descent step moves x by -grad: keep it when x is inside, or when it moves x back inside.
        keep = ((x >= 0) & (x <= 1)) | ((x < 0) & (grad < 0)) | ((x > 1) & (grad > 0))
        return grad * keep.to(grad.dtype)


def box(x: torch.Tensor) -> torch.Tensor:
    return _Box.apply(x)


def normalise_weights(g: torch.Tensor, dim: int) -> torch.Tensor:
    """Component weights in [0, 1] whose sum may exceed 1: scale such sums down to 1."""
    total = g.sum(dim, keepdim=True)
    return g / total.clamp(min=1.0)


GRAD_FLOOR = 0.05
# What an output-level module's weights are laid out for; part of a braid's fusion signature, so weights
# saved for another layout are refused by name instead of failing on a tensor shape.
# 2: the router reads evidence features; lossy members' readings are chosen before the strategy.
# 3: the router is a switch times a softmax competition among the anchor and the members.
OUTPUT_LAYOUT = 3
# The anchor always keeps this share of the mass. A member can rule a token out entirely (a bridged arithmetic
# expert gives "." after "Python 3" ~1e-30): with its weight at 1, that one token costs ~69 nats, more than
# the rest of a text together. At 1% it costs at most log(100) = 4.6 nats more than the anchor alone, while
# trusting a member fully costs at most log(1/0.99) = 0.01 nats per token.
ANCHOR_FLOOR = 0.01


class _MixtureCorrection(torch.autograd.Function):
    """log p - log p_anchor for p = (1 - sum_c g_c) p_anchor + sum_c g_c q_c, exact 0 where every g_c is 0.

    Written out by hand because the autograd of logsumexp(log g + log q) is 0 * inf at g = 0: this is the
    analytic gradient, d log p / d g_c = (q_c - p_anchor) / p, with the ratio's exponent capped so a token
    the anchor gives almost no mass cannot overflow it.

    The ratio q_c / p is at most 1 / g_c, but at g_c = 0 it is unbounded: a token the anchor gives 1e-9
    and a member 0.5 would pull the weight with a gradient of 5e8 and drown every other position in the
    batch. So the ratios are capped at 1 / max(g_c, GRAD_FLOOR): exact wherever g_c >= GRAD_FLOOR, and a
    bounded push of at most 1 / GRAD_FLOOR per position below it.
    """

    @staticmethod
    def forward(ctx, lp_a: torch.Tensor, lq: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        # lp_a: (B, T, V); lq: (B, C, T, V); g: (B, C, T)
        w_a = (1.0 - g.sum(1)).clamp(min=0.0)  # (B, T)
        terms = torch.cat([(w_a.log().unsqueeze(-1) + lp_a).unsqueeze(1), g.log().unsqueeze(-1) + lq], 1)
        log_p = torch.logsumexp(terms, 1)  # (B, T, V); exactly lp_a where g == 0
        ctx.save_for_backward(lp_a, lq, g, w_a, log_p)
        return log_p - lp_a

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        lp_a, lq, g, w_a, log_p = ctx.saved_tensors
        cap_a = -w_a.clamp(min=GRAD_FLOOR).log().unsqueeze(-1)  # (B, T, 1)
        cap_q = -g.clamp(min=GRAD_FLOOR).log().unsqueeze(-1)  # (B, C, T, 1)
        r_a = torch.minimum(lp_a - log_p, cap_a).exp()  # p_a / p
        r_q = torch.minimum(lq - log_p.unsqueeze(1), cap_q).exp()  # (B, C, T, V): q_c / p
        grad_g = (grad.unsqueeze(1) * (r_q - r_a.unsqueeze(1))).sum(-1)
        grad_lp_a = grad * (w_a.unsqueeze(-1) * r_a - 1.0)
        grad_lq = grad.unsqueeze(1) * g.unsqueeze(-1) * r_q
        return grad_lp_a, grad_lq, grad_g


def mixture_correction(lp_a: torch.Tensor, lq: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """(B, T, V) to add to the anchor's logits. lp_a: (B, T, V) anchor log-probs; lq: (B, C, T, V)
    component log-probs; g: (B, C, T) component weights in [0, 1] summing to at most 1."""
    return _MixtureCorrection.apply(lp_a, lq, g)


class OutputFusion(nn.Module):
    """Base class of output-level strategies: subclasses implement ``components``.

    ``anchor_dim`` is the anchor's hidden width, ``num_members`` how many non-anchor members feed it and
    ``readings`` how many distributions each of them gives (more than 1 for a whitespace-lossy bridged
    member: ``braid.fusion.readings`` picks between them before the strategy sees one per member).
    """

    name: ClassVar[str]
    level: ClassVar[str] = "output"
    Params: ClassVar[type[OutputParams]] = OutputParams
    trains_components: ClassVar[bool] = False  # True when the components have parameters of their own
    reads_evidence: ClassVar[bool] = False  # True when ``components`` reads ``dists.evidence``

    def __init__(
        self,
        anchor_dim: int,
        num_members: int,
        fusion_dim: int,
        params: OutputParams | None = None,
        readings: list[int] | None = None,
    ):
        super().__init__()
        self.anchor_dim, self.num_members, self.fusion_dim = anchor_dim, num_members, fusion_dim
        self.params = params or self.Params()
        self.norm = nn.RMSNorm(anchor_dim)  # the anchor's final state, as its LM head reads it
        readings = [1] * num_members if readings is None else list(readings)
        if len(readings) != num_members or min(readings, default=1) < 1:
            raise ValueError(f"readings {readings} must give a count >= 1 for each of {num_members} members")
        self.readings = ReadingSelector(anchor_dim, readings)

    def components(
        self, h: torch.Tensor, dists: MemberDists, anchor_probs: torch.Tensor, cache: dict[str, Any] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """h: (B, T, D_a) normalised anchor states. Returns (q (B, Q, T, V) mixture components, g (B, Q, T)
        their raw weights, boxed to [0, 1] by the caller)."""
        raise NotImplementedError

    def forward(
        self,
        anchor_logits: torch.Tensor,
        anchor_hidden: torch.Tensor,
        dists: MemberDists,
        cache: dict[str, Any] | None = None,
        labels: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """anchor_logits (B, T, V), anchor_hidden (B, T, D_a) its final state, input_ids (B, T) the anchor
        tokens at these positions (None: no evidence features, as for a text's first token) -> (mixed
        logits (B, T, V), the components' own loss when training with ``labels`` (B, T), else None)."""
        logits = anchor_logits.float()
        lp_a = torch.log_softmax(logits, -1)
        h, anchor_probs = self.norm(anchor_hidden.float()), lp_a.exp()
        dists = self.readings(h, dists, anchor_probs)  # (B, M, T, V): one distribution per member
        if input_ids is not None and self.reads_evidence:
            ev_cache = None if cache is None else cache.setdefault("evidence", {})
            gain = realised_gain(dists.probs.detach(), lp_a.detach(), input_ids, dists.valid, ev_cache)
            dists = MemberDists(dists.probs, dists.valid, gain)
        strategy_cache = None if cache is None else cache.setdefault("strategy", {})
        q, g = self.components(h, dists, anchor_probs, strategy_cache)
        g = (1.0 - ANCHOR_FLOOR) * normalise_weights(box(g), dim=1)
        lq = q.clamp(min=1e-30).log()  # (B, C, T, V)
        aux = None
        if labels is not None and self.training and self.params.aux_weight:
            aux = self._aux_loss(lq, dists, labels)
        return logits + mixture_correction(lp_a, lq, g), aux

    def _aux_loss(self, lq: torch.Tensor, dists: MemberDists, labels: torch.Tensor) -> torch.Tensor | None:
        """Trainable components and reading choices scored on their own next-token loss (None: neither)."""
        parts = [component_loss(lq, labels)] if self.trains_components else []
        if chosen := self.readings.selected:
            parts.append(component_loss(dists.probs[:, chosen].clamp(min=1e-30).log(), labels))
        return self.params.aux_weight * sum(parts) if parts else None


def component_loss(lq: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL of each component on its own, summed over components. lq: (B, C, T, V)."""
    target = labels[:, 1:].to(lq.device)  # (B, T-1)
    keep = target != -100
    picked = (
        lq[:, :, :-1]
        .gather(-1, target.clamp(min=0).view(target.shape[0], 1, -1, 1).expand(-1, lq.shape[1], -1, 1))
        .squeeze(-1)
    )  # (B, C, T-1)
    return -(picked * keep.unsqueeze(1)).sum((0, 2)).div(keep.sum().clamp(min=1)).sum()
