"""Per-point fusion architectures (#25 part 2): each hidden fusion point its own strategy, width and members."""

import pytest
import torch
from pydantic import ValidationError

from braid import BraidedLLM
from braid.config import FusionPoint
from braid.fusion.attention import AttentionFusion
from braid.fusion.router import RouterFusion
from tests.conftest import assert_cached_generation_is_the_forward, randomize_fusion

POINTS = [{"strategy": "attention", "fusion_dim": 8}, {"strategy": "router", "members": [0, 2]}]


def braid(trio, points=POINTS, **kw):
    return BraidedLLM(
        trio, fusion_strategy="learned_weighted", fusion_layers=[0, 1], fusion_dim=16, points=points, **kw
    )


def test_each_point_gets_its_own_strategy_width_and_receivers(trio):
    b = braid(trio)
    first, last = b.fusion_modules[0], b.fusion_modules[1]
    assert isinstance(first, AttentionFusion) and first.fusion_dim == 8 and first.receivers == [0, 1, 2]
    assert isinstance(last, RouterFusion) and last.fusion_dim == 16 and last.receivers == [0]
    mid = braid(trio, [{"members": [0, 1]}, {}]).fusion_modules[0]
    assert mid.receivers == [0, 1]  # a member not taking part gets no update


def test_a_member_not_taking_part_does_not_reach_the_point(trio, tokenizer):
    """Point 1 fuses members 0 and 2 only: changing member 1's state there changes nothing, while at point
    0 (all members) it does."""
    b = braid(trio, [{}, {"members": [0, 2]}])
    randomize_fusion(b, seed=2)
    from braid.alignment import Alignment
    from braid.fusion.step import FusionStep

    step = FusionStep(b.fusion_modules, Alignment.identity(None, 3), None, None, [[0, 1, 2], [0, 2]])
    states = [torch.randn(1, 5, m.hidden_size) for m in b.models]
    other = [states[0], torch.randn_like(states[1]), states[2]]
    with torch.no_grad():
        assert not torch.allclose(step(0, states)[0], step(0, other)[0])
        assert torch.equal(step(1, states)[0], step(1, other)[0])


def test_an_untrained_braid_with_points_is_its_anchor_and_generates_as_its_forward(trio, tokenizer):
    b = braid(trio)
    ids = tokenizer("the braid reads", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(b(ids).logits, b.models[0](ids).logits, atol=1e-5)
    randomize_fusion(b, seed=3)
    assert_cached_generation_is_the_forward(b, ids, 8)


def test_points_save_load_and_refuse_another_architecture(trio, tmp_path):
    b = braid(trio)
    randomize_fusion(b, seed=4)
    b.save_pretrained(tmp_path / "b")
    again = BraidedLLM.from_pretrained(tmp_path / "b")
    ids = again.tokenizer("a quick fox", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(b(ids).logits, again(ids).logits, atol=1e-6)
    other = braid(trio, [{"strategy": "attention", "fusion_dim": 8}, {"strategy": "router"}])
    with pytest.raises(ValueError, match="points"):
        other.load_fusion_layers(tmp_path / "b" / "fusion.safetensors")


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([{}], "one entry per fusion point"),
        ([{"strategy": "output_router"}, {}], "one hidden-state strategy"),
        ([{"members": [1, 2]}, {}], "including the anchor"),
        ([{"members": [0, 5]}, {}], "including the anchor"),
        ([{"strategy": "attention", "fusion_dim": 6}, {}], "divisible by num_heads"),
    ],
)
def test_bad_points_are_named(trio, points, message):
    with pytest.raises(ValidationError, match=message):
        braid(trio, points)


def test_fusion_point_defaults_follow_the_braid(trio):
    b = braid(trio, [FusionPoint(), FusionPoint(fusion_dim=8)])
    assert b.config.point(0)[:2] == ("learned_weighted", 16) and b.config.point(1)[:2] == (
        "learned_weighted",
        8,
    )
