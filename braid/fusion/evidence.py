"""How well each member has predicted this text so far: a feature the output router weighs members by.

Where a text starts, the anchor's state says little about its kind ("622+" could open prose or a sum), and
a router reading the state alone keeps a member shut until it is sure: on arithmetic that cost 42 of the
44 nats a prose+arithmetic braid lost to its arithmetic member. The realised likelihood does not wait
for the state to tell: after each token x_t, how much more the member gave it than the anchor did,

    r_m(t) = clip(log q_m(t-1)[x_t] - log p_a(t-1)[x_t]) / log V        (0 at the first token)

averaged with exponential decay at a fast and a slow rate. It reads only tokens already written, so it is
causal, and the generation cache carries the running averages and the last position's distributions.
"""

from __future__ import annotations

import math
from typing import Any

import torch

RATES = (0.5, 0.9)  # decay per token of the two running averages
CLIP = 8.0  # nats: one token a member rules out should not outweigh the rest of the text


def realised_gain(
    q: torch.Tensor, lp_a: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor, cache: dict[str, Any] | None
) -> torch.Tensor:
    """q: (B, M, T, V) members' probabilities; lp_a: (B, T, V) the anchor's log-probs; ids: (B, T) the anchor
    tokens at these positions; valid: (B, M, T). Returns (B, M, T, len(RATES)) running averages of r_m."""
    b, m, t, _ = q.shape
    r = torch.zeros(b, m, t, device=q.device)  # r(t) scores x_t against the distributions at t - 1
    r[..., 1:] = _scored(q[..., :-1, :], lp_a[:, :-1], ids[:, 1:], valid[..., :-1])
    state = cache.get("state") if cache is not None else None
    if state is not None:  # a cached step: its first token is scored against the previous step's last
        r[..., 0] = _scored(cache["last_q"], cache["last_a"], ids[:, :1], cache["last_valid"])[..., 0]
    else:
        state = torch.zeros(b, m, len(RATES), device=q.device)
    rates = torch.tensor(RATES, device=q.device)
    out = []
    for s in range(t):
        state = rates * state + (1 - rates) * r[..., s : s + 1]
        out.append(state)
    if cache is not None:
        cache.update(state=state, last_q=q[..., -1:, :], last_a=lp_a[:, -1:], last_valid=valid[..., -1:])
    return torch.stack(out, 2)  # (B, M, T, R)


def _scored(q: torch.Tensor, lp_a: torch.Tensor, next_ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Distributions at positions s (q (B, M, S, V) probabilities, lp_a (B, S, V) log-probs) and the token
    written after each (next_ids (B, S)) -> (B, M, S) clipped gains in units of log V, 0 where the member
    had no distribution."""
    b, m, s, v = q.shape
    idx = next_ids.to(q.device).view(b, 1, s, 1)
    lq = q.gather(-1, idx.expand(b, m, s, 1)).squeeze(-1).clamp(min=1e-30).log()  # (B, M, S)
    a = lp_a.gather(-1, idx.view(b, s, 1)).squeeze(-1).unsqueeze(1)
    return (lq - a).clamp(-CLIP, CLIP) / math.log(v) * valid
