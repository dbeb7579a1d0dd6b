"""Output-level fusion: the mixture, its gates, the router and the pointer, and braids that use them."""

import json

import pytest
import torch

from braid import BraidedLLM, ModelWrapper
from braid.fusion.dists import MemberDists, from_top_k, top_k_dists
from braid.fusion.output import ANCHOR_FLOOR, GRAD_FLOOR, box, component_loss, mixture_correction
from braid.fusion.pointer import PointerFusion, PointerParams
from braid.generation import BraidSession
from tests.conftest import randomize_fusion

OUTPUT = ["output_router", "pointer", "attention+pointer", "router+output_router"]


def braid(paths, strategy, **kw):
    return BraidedLLM(model_configs=paths, fusion_strategy=strategy, fusion_dim=32, **kw)


@pytest.fixture(scope="module")
def batch(tokenizer):
    enc = tokenizer(["the braid reads the text", "a fox"], return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]


def test_mixture_correction_is_the_log_of_the_mixture():
    gen = torch.Generator().manual_seed(0)
    lp_a = torch.log_softmax(torch.randn(2, 3, 7, generator=gen), -1)
    lq = torch.log_softmax(torch.randn(2, 2, 3, 7, generator=gen), -1)
    g = torch.rand(2, 2, 3, generator=gen) * 0.5
    mixed = (1 - g.sum(1, keepdim=True)).squeeze(1).unsqueeze(-1) * lp_a.exp()
    mixed = mixed + (g.unsqueeze(-1) * lq.exp()).sum(1)
    assert torch.allclose(mixture_correction(lp_a, lq, g), mixed.log() - lp_a, atol=1e-6)
    assert torch.equal(mixture_correction(lp_a, lq, torch.zeros_like(g)), torch.zeros_like(lp_a))


def test_mixture_gradients_match_finite_differences_including_at_zero_weight():
    gen = torch.Generator().manual_seed(1)
    lp_a = torch.log_softmax(torch.randn(1, 2, 5, generator=gen, dtype=torch.float64), -1).requires_grad_()
    lq = torch.log_softmax(torch.randn(1, 2, 2, 5, generator=gen, dtype=torch.float64), -1).requires_grad_()
    g = torch.tensor([[[0.2, 0.05], [0.3, 0.1]]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(mixture_correction, (lp_a, lq, g))
    # At weight 0 (where the function stops: weights are never negative) the one-sided difference
    zero = torch.zeros(1, 2, 2, dtype=torch.float64, requires_grad=True)
    mixture_correction(lp_a.detach(), lq.detach(), zero)[..., 0].sum().backward()
    step = torch.zeros(1, 2, 2, dtype=torch.float64)
    step[0, 1, 0] = 1e-7
    one_sided = mixture_correction(lp_a.detach(), lq.detach(), step)[..., 0].sum() / 1e-7
    assert zero.grad[0, 1, 0] != 0 and torch.isclose(zero.grad[0, 1, 0], one_sided, rtol=1e-4)


def test_mixture_gradient_at_zero_weight_is_bounded_where_the_anchor_rules_a_token_out():
    lp_a = torch.log_softmax(torch.tensor([[[30.0, 0.0, 0.0]]]), -1)  # token 1: ~1e-13 to the anchor
    lq = torch.log_softmax(torch.tensor([[[[0.0, 5.0, 0.0]]]]), -1)
    g = torch.zeros(1, 1, 1, requires_grad=True)
    mixture_correction(lp_a, lq, g)[..., 1].sum().backward()
    assert 1.0 < g.grad.item() <= 1.0 / GRAD_FLOOR  # the exact derivative would be ~1e13


def test_box_clamps_and_passes_only_gradients_that_point_back_inside():
    x = torch.tensor([-0.5, -0.5, 0.3, 1.5, 1.5], requires_grad=True)
    y = box(x)
    assert torch.equal(y.detach(), torch.tensor([0.0, 0.0, 0.3, 1.0, 1.0]))
    y.backward(torch.tensor([-1.0, 1.0, 1.0, 1.0, -1.0]))  # descent moves x by -grad
    assert x.grad.tolist() == [-1.0, 0.0, 1.0, 1.0, 0.0]


def test_top_k_entries_become_a_full_distribution_spread_like_the_anchor():
    log_probs = torch.log_softmax(torch.randn(1, 4, 9), -1)
    ids, probs = top_k_dists(log_probs, 3)
    anchor = torch.softmax(torch.randn(1, 4, 9), -1)
    full = from_top_k(ids, probs, anchor)
    assert torch.allclose(full.sum(-1), torch.ones(1, 4), atol=1e-6)
    assert torch.equal(ids[..., 0], log_probs.argmax(-1))
    rest = 1 - probs.sum(-1, keepdim=True)
    outside = torch.ones_like(full, dtype=torch.bool).scatter(-1, ids, False)
    assert torch.allclose(full[outside], (rest * anchor)[outside])


@pytest.mark.parametrize("strategy", OUTPUT)
@pytest.mark.parametrize("n_members", [2, 3])
def test_untrained_braid_is_exactly_its_anchor(trio, batch, strategy, n_members):
    ids, mask = batch
    braided = braid(trio[:n_members], strategy)
    with torch.no_grad():
        ours = braided(ids, attention_mask=mask).logits
        ref = ModelWrapper(trio[0])(ids, attention_mask=mask).logits
    assert torch.equal(ours, ref)


def test_output_only_braid_has_no_fusion_points(trio):
    braided = braid(trio, "pointer")
    assert braided.config.fusion_layers == [] and len(braided.fusion_modules) == 0
    combined = braid(trio, "attention+pointer", fusion_layers=[0, 1])
    assert len(combined.fusion_modules) == 2 and combined.fusion_modules.output is not None


@pytest.mark.parametrize("strategy", OUTPUT)
def test_causality_later_tokens_never_change_earlier_logits(trio, strategy):
    braided = braid(trio, strategy)
    randomize_fusion(braided, seed=3)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(4, braided.anchor_model.vocab_size, (2, 12), generator=gen)
    edited = ids.clone()
    edited[:, 6:] = torch.randint(4, braided.anchor_model.vocab_size, (2, 6), generator=gen)
    with torch.no_grad():
        a, b = braided(ids).logits, braided(edited).logits
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-6, rtol=0)
    assert not torch.allclose(a[:, 6:], b[:, 6:])


@pytest.mark.parametrize("strategy", ["output_router", "pointer", "attention+pointer"])
def test_cached_steps_equal_the_full_forward(trio, tokenizer, strategy):
    # a window shorter than the text: the pointer's cache must drop old positions correctly
    params = {"pointer": {"window": 4}, "attention+pointer": {"pointer": {"window": 4}}}.get(strategy, {})
    braided = braid(trio, strategy, strategy_params=params)
    randomize_fusion(braided, seed=5)
    ids = tokenizer("every member keeps its own cache while", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        full = braided(ids).logits[0]
        session = BraidSession(braided)
        steps = [session.feed(ids[:, :3])[0]]
        steps += [session.feed(ids[:, t : t + 1])[0] for t in range(3, ids.shape[1])]
    # hidden-state attention alone differs by up to 1e-5 between cached and full passes (float order)
    assert torch.allclose(torch.stack(steps), full[2:], atol=1e-5 if "+" not in strategy else 1e-4)


def test_pointer_copies_the_distribution_of_an_earlier_position():
    ptr = PointerFusion(anchor_dim=8, num_members=1, fusion_dim=8, params=PointerParams(window=4))
    with torch.no_grad():
        ptr.offset_bias.copy_(torch.tensor([0.0, 0.0, 30.0, 0.0]))  # look two positions back
        ptr.gate.fill_(1.0)
    t, vocab = 6, 10
    certain = torch.eye(vocab)[:t].view(1, 1, t, vocab)  # position s predicts token s with certainty
    dists = MemberDists(certain, torch.ones(1, 1, t, dtype=torch.bool))
    logits, _ = ptr(torch.zeros(1, t, vocab), torch.randn(1, t, 8), dists)
    assert logits[0, 2:].argmax(-1).tolist() == [0, 1, 2, 3]
    top = torch.softmax(logits[0, 2:], -1).max(-1).values
    # the anchor (uniform here) keeps its floor share of the mass
    assert torch.allclose(top, torch.full((4,), 1 - ANCHOR_FLOOR + ANCHOR_FLOOR / vocab), atol=1e-4)


def test_pointer_trains_on_its_own_loss_only_in_training_mode(trio, batch):
    ids, mask = batch
    labels = ids.masked_fill(mask == 0, -100)
    braided = braid(trio[:2], "pointer")
    braided.train()
    train_loss = braided(ids, mask, labels=labels).loss
    braided.eval()
    eval_loss = braided(ids, mask, labels=labels).loss
    assert train_loss > eval_loss  # the pointer's own loss on top of the mixture's
    train_loss.backward()
    assert braided.fusion_modules.output.query.weight.grad.abs().sum() > 0  # learns with its gate at 0


def test_component_loss_ignores_masked_labels():
    lq = torch.log_softmax(torch.randn(1, 1, 3, 5), -1)
    labels = torch.tensor([[-100, 2, -100]])
    assert torch.allclose(component_loss(lq, labels), -lq[0, 0, 0, 2])


@pytest.mark.parametrize("strategy", ["pointer", "attention+output_router"])
def test_save_and_load_round_trip(trio, batch, tmp_path, strategy):
    ids, mask = batch
    braided = braid(trio, strategy)
    randomize_fusion(braided, seed=2)
    braided.save_pretrained(tmp_path)
    loaded = BraidedLLM.from_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded(ids, mask).logits, braided(ids, mask).logits)
    if strategy == "pointer":
        other = braid(trio, strategy, strategy_params={"window": 8})
        with pytest.raises(ValueError, match="strategy_params"):
            other.load_fusion_layers(tmp_path / "fusion.safetensors")


def test_weights_saved_for_an_older_output_layout_are_refused_by_name(trio, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    braided = braid(trio, "output_router")
    path = tmp_path / "fusion.safetensors"
    braided.save_fusion_layers(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    signature = json.loads(meta["signature"])
    del signature["output_layout"]  # what a checkpoint from before the layout was recorded carries
    save_file(load_file(str(path)), str(path), metadata={**meta, "signature": json.dumps(signature)})
    with pytest.raises(ValueError, match="output_layout"):
        braided.load_fusion_layers(path)


@pytest.mark.parametrize("strategy", ["output_router", "attention+pointer"])
def test_members_with_their_own_tokenizer_are_read_through_the_bridge(cross_trio, strategy):
    """WordPiece gives two components (a space before a new word or not), Unigram one; an output-level
    strategy alone runs them only through the bridge. Identity at start, causality and cached steps hold."""
    light = {"bridge": {"candidates": 24, "expand": 4, "depth": 2}}  # random members: keep the bridge small
    params = {"pointer": light} if "+" in strategy else light
    braided = braid(
        cross_trio, strategy, fusion_layers=[0, 1] if "+" in strategy else [], strategy_params=params
    )
    assert braided.readout.components == [(1, 0), (1, 1), (2, 0)]
    assert braided.exchange_cross == ({1, 2} if "+" in strategy else set())
    tok = braided.tokenizer
    ids = tok("every member keeps its own cache", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(braided(ids).logits, ModelWrapper(cross_trio[0])(ids).logits)
    randomize_fusion(braided, seed=3)
    edited = torch.cat([ids[:, :5], tok(" while the braid", return_tensors="pt")["input_ids"]], 1)
    with torch.no_grad():
        full, other = braided(ids).logits[0], braided(edited).logits[0]
        session = BraidSession(braided)
        steps = [session.feed(ids[:, :3])[0]] + [
            session.feed(ids[:, t : t + 1])[0] for t in range(3, ids.shape[1])
        ]
    # probabilities, not logits: a token no component gives mass has a logit at the clamp (about -63).
    # Float noise between passes of different lengths reaches ~4e-7 (causal) and ~1e-6 (cached) here; an
    # edit that leaks moves position 5 by ~0.1.
    p_full, p_other = full.softmax(-1), other.softmax(-1)
    assert torch.allclose(p_full[:5], p_other[:5], atol=1e-5)
    assert not torch.allclose(p_full[5], p_other[5], atol=1e-3)
    assert torch.allclose(torch.stack(steps).softmax(-1), full[2:].softmax(-1), atol=3e-5)
