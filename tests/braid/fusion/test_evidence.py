"""The realised-likelihood feature: what it measures, causality, and cached steps."""

import math

import torch

from braid.fusion.evidence import CLIP, RATES, realised_gain


def inputs(seed=0, b=2, m=2, t=7, v=11):
    gen = torch.Generator().manual_seed(seed)
    q = torch.softmax(torch.randn(b, m, t, v, generator=gen) * 2, -1)
    lp_a = torch.log_softmax(torch.randn(b, t, v, generator=gen) * 2, -1)
    ids = torch.randint(0, v, (b, t), generator=gen)
    return q, lp_a, ids, torch.ones(b, m, t, dtype=torch.bool)


def test_gain_is_how_much_more_a_member_gave_the_written_token():
    q, lp_a, ids, valid = inputs()
    out = realised_gain(q, lp_a, ids, valid, None).view(2, 2, 7, 2, len(RATES))  # (B, M, T, refs, rates)
    assert torch.equal(out[:, :, 0], torch.zeros(2, 2, 2, len(RATES)))  # nothing written yet to judge by
    x = ids[0, 1]
    lq, la = q[0, :, 0, x].log(), lp_a[0, 0, x]
    vs_anchor = (lq[1] - la).clamp(-CLIP, CLIP) / math.log(11)
    vs_best = (lq[1] - torch.maximum(la, lq[0])).clamp(-CLIP, CLIP) / math.log(11)
    assert torch.allclose(out[0, 1, 1, 0], (1 - torch.tensor(RATES)) * vs_anchor)
    assert torch.allclose(out[0, 1, 1, 1], (1 - torch.tensor(RATES)) * vs_best)
    valid[0, 1, 0] = False  # a member without a distribution there is not judged, nor compared with
    again = realised_gain(q, lp_a, ids, valid, None).view(2, 2, 7, 2, len(RATES))
    assert torch.equal(again[0, 1, 1], torch.zeros(2, len(RATES)))
    vs_anchor_0 = (lq[0] - la).clamp(-CLIP, CLIP) / math.log(11)
    assert torch.allclose(again[0, 0, 1, 1], (1 - torch.tensor(RATES)) * vs_anchor_0)


def test_gain_is_causal_and_cached_steps_match_one_pass():
    q, lp_a, ids, valid = inputs(seed=1)
    full = realised_gain(q, lp_a, ids, valid, None)
    edited = ids.clone()
    edited[:, 4] = (ids[:, 4] + 1) % 11
    other = realised_gain(q, lp_a, edited, valid, None)
    assert torch.equal(full[..., :4, :], other[..., :4, :]) and not torch.equal(
        full[..., 4, :], other[..., 4, :]
    )
    cache: dict = {}
    parts = [realised_gain(q[..., :3, :], lp_a[:, :3], ids[:, :3], valid[..., :3], cache)]
    for s in range(3, 7):
        step = slice(s, s + 1)
        parts.append(realised_gain(q[..., step, :], lp_a[:, step], ids[:, step], valid[..., step], cache))
    assert torch.allclose(torch.cat(parts, 2), full, atol=1e-6)
