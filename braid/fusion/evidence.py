"""How well each member has predicted this text so far: features the output router weighs members by.

Where a text starts, the anchor's state says little about its kind ("622+" could open prose or a sum), and
a router reading the state alone keeps a member shut until it is sure: on arithmetic that cost 42 of the
44 nats a prose+arithmetic braid lost to its arithmetic member. The realised likelihood does not wait
for the state to tell. After each token x_t, two gains per member, each clipped and in units of log V:

    against the anchor:            log q_m(t-1)[x_t] - log p_a(t-1)[x_t]
    against the best other source: log q_m(t-1)[x_t] - log max(p_a, q_m' for m' != m)(t-1)[x_t]

(0 at the first token), each averaged with exponential decay at a fast and a slow rate. The first says
"this member knows this text better than the anchor"; the second tells two such members apart. The
output router also reads the first as log-odds (``log_evidence``: decayed sums in nats), the weight a
posterior over "which source writes this text" gives each member. Both read only tokens already written,
so they are causal; the generation cache carries the averages and the last position's distributions.
"""

from __future__ import annotations

import math
from typing import Any

import torch

RATES = (0.5, 0.9)  # decay per token of the running averages
REFERENCES = 2  # the anchor; the best other source
FEATURES = REFERENCES * len(RATES)  # per member
CLIP = 8.0  # nats: one token a member rules out should not outweigh the rest of the text


def realised_gain(
    q: torch.Tensor, lp_a: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor, cache: dict[str, Any] | None
) -> torch.Tensor:
    """q: (B, M, T, V) members' probabilities; lp_a: (B, T, V) the anchor's log-probs; ids: (B, T) the anchor
    tokens at these positions; valid: (B, M, T). Returns (B, M, T, FEATURES) running averages."""
    b, m, t, _ = q.shape
    r = torch.zeros(b, m, t, REFERENCES, device=q.device)  # r(t) scores x_t against the distributions at t-1
    r[:, :, 1:] = _scored(q[..., :-1, :], lp_a[:, :-1], ids[:, 1:], valid[..., :-1])
    state = cache.get("state") if cache is not None else None
    if state is not None:  # a cached step: its first token is scored against the previous step's last
        r[:, :, 0] = _scored(cache["last_q"], cache["last_a"], ids[:, :1], cache["last_valid"])[:, :, 0]
    else:
        state = torch.zeros(b, m, REFERENCES, len(RATES), device=q.device)
    rates = torch.tensor(RATES, device=q.device)
    out = []
    for s in range(t):
        state = rates * state + (1 - rates) * r[:, :, s].unsqueeze(-1)  # (B, M, REFERENCES, RATES)
        out.append(state.flatten(2))
    if cache is not None:
        cache.update(state=state, last_q=q[..., -1:, :], last_a=lp_a[:, -1:], last_valid=valid[..., -1:])
    return torch.stack(out, 2)  # (B, M, T, FEATURES)


def _scored(q: torch.Tensor, lp_a: torch.Tensor, next_ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Distributions at positions s (q (B, M, S, V) probabilities, lp_a (B, S, V) log-probs) and the token
    written after each (next_ids (B, S)) -> (B, M, S, REFERENCES) clipped gains in units of log V, 0 where
    the member had no distribution."""
    b, m, s, v = q.shape
    idx = next_ids.to(q.device).view(b, 1, s, 1)
    lq = q.gather(-1, idx.expand(b, m, s, 1)).squeeze(-1).clamp(min=1e-30).log()  # (B, M, S)
    a = lp_a.gather(-1, idx.view(b, s, 1)).squeeze(-1).unsqueeze(1)  # (B, 1, S)
    # the best source other than m: the anchor or another member that had a distribution there
    others = lq.masked_fill(~valid, -math.inf).unsqueeze(1).expand(b, m, m, s)  # (B, M, M', S)
    others = others.masked_fill(torch.eye(m, dtype=torch.bool, device=q.device).view(1, m, m, 1), -math.inf)
    best = torch.maximum(others.amax(2), a)  # (B, M, S)
    gains = torch.stack([lq - a, lq - best], -1).clamp(-CLIP, CLIP)  # (B, M, S, REFERENCES)
    return gains / math.log(v) * valid.unsqueeze(-1)


def log_evidence(evidence: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(B, M, T, FEATURES) running averages -> (B, M, T, len(RATES)): each member's decayed sum of gains
    against the anchor, in nats (an average at rate r times log V / (1 - r)). A posterior over which source
    writes this text puts log-weight sum_s log q_m(x_s) - log p_a(x_s) on member m against the anchor: these
    sums are that log-odds, forgetting at each rate."""
    rates = torch.tensor(RATES, device=evidence.device)
    return evidence[..., : len(RATES)] * math.log(vocab_size) / (1 - rates)
