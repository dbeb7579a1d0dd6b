"""attention fusion against a direct reference: one softmax per (member, head, query) over every other
member's positions at or before the query, a per-head bonus at the aligned position, and a null slot."""

from __future__ import annotations

import pytest
import torch

from braid.fusion.attention import AttentionFusion


def reference_mix(
    fusion: AttentionFusion, z: torch.Tensor, valid: torch.Tensor | None, past: torch.Tensor | None
):
    """z: (B, M, T, F) new positions; past: (B, M, P, F) earlier ones (their keys and values are recomputed)."""
    b, m, t, f = z.shape
    h = fusion.params.num_heads
    full = z if past is None else torch.cat([past, z], 2)  # (B, M, S, F)
    s, p = full.shape[2], full.shape[2] - t
    valid = torch.ones(b, m, s, dtype=torch.bool) if valid is None else valid
    q = fusion.q(z).view(b, m, t, h, f // h)
    k, v = (x.view(b, m, s, h, f // h) for x in fusion.kv(full).chunk(2, -1))
    out = torch.zeros(b, m, t, h, f // h)
    for bi, i, qi, hi in torch.cartesian_prod(*(torch.arange(n) for n in (b, m, t, h))).tolist():
        logits, values = [torch.zeros(())], [torch.zeros(f // h)]  # the null slot
        for j in range(m):
            for si in range(p + qi + 1):
                if j == i or not valid[bi, j, si]:
                    continue
                score = q[bi, i, qi, hi] @ k[bi, j, si, hi] / (f // h) ** 0.5
                logits.append(score + fusion.same_position[hi] * (si == p + qi))
                values.append(v[bi, j, si, hi])
        weights = torch.softmax(torch.stack(logits), 0)
        out[bi, i, qi, hi] = (weights[:, None] * torch.stack(values)).sum(0)
    return fusion.o(out.reshape(b, m, t, f))


@pytest.fixture
def fusion():
    torch.manual_seed(0)
    module = AttentionFusion([24, 40, 32], fusion_dim=16)
    with torch.no_grad():
        module.same_position.copy_(torch.randn(4))
    return module


@pytest.mark.parametrize("masked", [False, True])
def test_prefill_matches_reference(fusion, masked):
    z = torch.randn(2, 3, 5, 16)
    valid = torch.rand(2, 3, 5) > 0.3 if masked else None
    got = fusion.mix(z, valid, cache={})
    assert torch.allclose(got, reference_mix(fusion, z, valid, None), atol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("steps", [[4, 1, 1], [3, 2, 1]])
def test_cached_steps_match_reference(fusion, masked, steps):
    """Decoding (one new position) and extending by several positions both read the earlier ones from the
    cache, with the mask of every earlier step kept."""
    z = torch.randn(1, 3, sum(steps), 16)
    valid = torch.rand(1, 3, sum(steps)) > 0.3 if masked else None
    cache, start = {}, 0
    for n in steps:
        step_valid = None if valid is None else valid[:, :, start : start + n]
        got = fusion.mix(z[:, :, start : start + n], step_valid, cache)
        past = z[:, :, :start] if start else None
        want = reference_mix(
            fusion, z[:, :, start : start + n], None if valid is None else valid[:, :, : start + n], past
        )
        assert torch.allclose(got, want, atol=1e-5), f"step of {n} after {start}"
        start += n


def test_gradients_match_reference(fusion):
    z = torch.randn(1, 3, 4, 16, requires_grad=True)
    valid = torch.tensor([[[True, False, True, True], [True, True, False, True], [False, True, True, True]]])
    fusion.mix(z, valid, None).square().sum().backward()
    params = {
        "q": fusion.q.weight,
        "kv": fusion.kv.weight,
        "o": fusion.o.weight,
        "bonus": fusion.same_position,
    }
    got = {name: p.grad.clone() for name, p in params.items()} | {"z": z.grad.clone()}
    fusion.zero_grad()
    z.grad = None
    reference_mix(fusion, z, valid, None).square().sum().backward()
    want = {name: p.grad for name, p in params.items()} | {"z": z.grad}
    for name, grad in got.items():
        assert torch.allclose(grad, want[name], atol=1e-5), name


def test_a_position_with_nothing_visible_attends_to_the_null_slot(fusion):
    z = torch.randn(1, 3, 2, 16)
    valid = torch.tensor([[[True, True], [False, False], [False, False]]])
    out = fusion.mix(z, valid, None)
    assert torch.isfinite(out).all()
    # member 0 sees nobody: all its weight goes to the null slot, whose value is zero
    assert torch.allclose(out[0, 0], torch.zeros(2, 16), atol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_forward_and_gradients_match_cpu(fusion, dtype):
    """On CUDA the fused kernels take the bias (its gradient included, for the per-head bonus) and the
    broadcast over the batch; the null slot keeps fully masked rows finite."""
    z = torch.randn(3, 3, 6, 16)
    valid = torch.rand(3, 3, 6) > 0.3
    valid[0, 1:] = False  # member 0 of sample 0 sees nobody
    tol = 1e-4 if dtype == torch.float32 else 6e-2
    results = []
    for device, dt in (("cpu", torch.float32), ("cuda", dtype)):
        module = fusion.to(device, dt)
        module.zero_grad()
        x = z.to(device, dt, copy=True).requires_grad_()
        out = module.mix(x, valid.to(device), None)
        out.float().square().sum().backward()
        grads = [module.same_position.grad, module.q.weight.grad, x.grad]
        results.append([t.detach().float().cpu() for t in (out, *grads)])
    for name, want, got in zip(("out", "bonus", "q", "z"), *results, strict=True):
        assert torch.isfinite(got).all(), name
        assert torch.allclose(got, want, atol=tol, rtol=tol), name
