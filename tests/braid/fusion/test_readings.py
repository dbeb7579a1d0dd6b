"""Reading selection: a bridged WordPiece member's two readings become one learned distribution."""

import torch

from braid.fusion.dists import MemberDists
from braid.fusion.output import component_loss
from braid.fusion.output_router import OutputRouterFusion
from braid.fusion.readings import ReadingSelector


def dists(gen, b=2, c=3, t=5, v=7):
    probs = torch.softmax(torch.randn(b, c, t, v, generator=gen) * 3, -1)
    return MemberDists(probs, torch.ones(b, c, t, dtype=torch.bool))


def test_untrained_selector_splits_evenly_and_leaves_single_readings_alone():
    gen = torch.Generator().manual_seed(0)
    d = dists(gen)
    anchor = torch.softmax(torch.randn(2, 5, 7, generator=gen), -1)
    out = ReadingSelector(8, [2, 1])(torch.randn(2, 5, 8, generator=gen), d, anchor)
    assert out.probs.shape == (2, 2, 5, 7)
    assert torch.allclose(out.probs[:, 0], d.probs[:, :2].mean(1), atol=1e-6)
    assert torch.equal(out.probs[:, 1], d.probs[:, 2])
    assert ReadingSelector(8, [1, 1])(torch.zeros(2, 5, 8), d, anchor) is d  # nothing to choose: untouched


def test_a_reading_without_a_distribution_gets_no_share():
    gen = torch.Generator().manual_seed(1)
    d = dists(gen, c=2)
    d.valid[:, 1, 2:] = False
    out = ReadingSelector(8, [2])(torch.randn(2, 5, 8, generator=gen), d, torch.full((2, 5, 7), 1 / 7))
    assert torch.allclose(out.probs[:, 0, 2:], d.probs[:, 0, 2:], atol=1e-6)
    d.valid[:, 0, 4] = False
    assert (
        not ReadingSelector(8, [2])(torch.zeros(2, 5, 8), d, torch.full((2, 5, 7), 1 / 7))
        .valid[:, 0, 4]
        .any()
    )


def test_selector_learns_which_reading_the_anchor_state_calls_for():
    """The right reading depends on a direction of the anchor state the selector must find."""
    gen = torch.Generator().manual_seed(2)
    b, t, v = 16, 6, 9
    probs = torch.zeros(b, 2, t, v)
    probs[:, 0, :, 0], probs[:, 1, :, 1] = 0.9, 0.9  # reading 0 says token 0, reading 1 says token 1
    probs[..., 2:] = 0.1 / (v - 2)
    h = torch.randn(b, t, 8, generator=gen)
    target = (h[..., 3] > 0).long()  # (B, T): token 1 where the state's 4th coordinate is positive
    labels = torch.cat([torch.zeros(b, 1, dtype=torch.long), target], 1)[:, :t]  # label at t+1 is target[t]
    d = MemberDists(probs, torch.ones(b, 2, t, dtype=torch.bool))
    sel = ReadingSelector(8, [2])
    anchor = torch.full((b, t, v), 1 / v)
    opt = torch.optim.Adam(sel.parameters(), lr=0.1)
    before = component_loss(sel(h, d, anchor).probs.log(), labels).item()
    for _ in range(100):
        opt.zero_grad()
        component_loss(sel(h, d, anchor).probs.log(), labels).backward()
        opt.step()
    after = component_loss(sel(h, d, anchor).probs.log(), labels).item()
    assert before > 0.7 and after < 0.3, (before, after)


def test_output_strategy_trains_the_selector_through_its_own_loss_while_the_gate_is_closed():
    gen = torch.Generator().manual_seed(3)
    fusion = OutputRouterFusion(8, 2, 8, readings=[2, 1]).train()
    d = dists(gen)
    logits = torch.randn(2, 5, 7, generator=gen)
    labels = torch.randint(0, 7, (2, 5), generator=gen)
    mixed, aux = fusion(logits, torch.randn(2, 5, 8, generator=gen), d, labels=labels)
    assert torch.equal(mixed, logits)  # closed gates: exactly the anchor
    aux.backward()
    assert fusion.readings.select["0"].weight.grad.abs().sum() > 0
    assert fusion.router.weight.grad is None or fusion.router.weight.grad.abs().sum() == 0
