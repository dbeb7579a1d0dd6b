"""The output router: a closed switch is the anchor; open, members compete for the weight by evidence."""

import math

import torch

from braid.fusion.dists import MemberDists
from braid.fusion.evidence import FEATURES, RATES
from braid.fusion.output_router import OutputRouterFusion

V, T = 7, 5


def dists(gains: list[float], valid: list[bool] | None = None) -> MemberDists:
    """Two members with random distributions whose averaged gain against the anchor (in units of log V, at
    every rate) is ``gains[m]`` at every position."""
    gen = torch.Generator().manual_seed(0)
    m = len(gains)
    probs = torch.softmax(torch.randn(1, m, T, V, generator=gen), -1)
    evidence = torch.zeros(1, m, T, FEATURES)
    evidence[..., : len(RATES)] = torch.tensor(gains).view(1, m, 1, 1)
    ok = torch.tensor(valid or [True] * m).view(1, m, 1).expand(1, m, T)
    return MemberDists(probs, ok, evidence)


def weights(router: OutputRouterFusion, d: MemberDists) -> torch.Tensor:
    anchor = torch.softmax(torch.randn(1, T, V, generator=torch.Generator().manual_seed(1)), -1)
    return router.components(torch.zeros(1, T, 8), d, anchor, None)[1]  # (1, M, T)


def test_closed_switch_gives_every_member_zero_weight():
    assert torch.equal(weights(OutputRouterFusion(8, 2, 8), dists([0.5, 0.1])), torch.zeros(1, 2, T))


def test_the_member_that_predicted_the_text_best_takes_the_weight_from_the_others():
    router = OutputRouterFusion(8, 2, 8)
    with torch.no_grad():
        router.gate.fill_(1.0)  # switch open
    # both members beat the anchor; the second by more. Independent weights kept both open, a posterior
    # gives the weaker one a share of exp(-(difference of their log-odds))
    w = weights(router, dists([0.1, 0.5]))[0]
    odds = [g * math.log(V) * sum(1 / (1 - r) for r in RATES) for g in (0.1, 0.5)]
    expected_weak = math.exp(odds[0]) / (1 + math.exp(odds[0]) + math.exp(odds[1]))
    assert torch.allclose(w[0], torch.full((T,), expected_weak), rtol=1e-4)
    assert (w[1] > 0.99).all() and (w[0] < 1e-3).all()
    assert torch.allclose(w.sum(0), torch.ones(T) - 1 / (1 + math.exp(odds[0]) + math.exp(odds[1])))


def test_a_member_without_a_distribution_gets_no_share_and_no_nan():
    router = OutputRouterFusion(8, 2, 8)
    with torch.no_grad():
        router.gate.fill_(1.0)
    w = weights(router, dists([0.0, 0.3], valid=[True, False]))[0]
    assert torch.equal(w[1], torch.zeros(T)) and torch.allclose(w[0], torch.full((T,), 0.5))
