"""Hierarchical braiding (#25 part 1): a saved braid as one member of another braid (``braid.nested``)."""

import pytest
import torch

from braid import BraidedLLM
from braid.nested import BraidMember, config_tree
from braid.train import TrainConfig, train_fusion
from tests.conftest import assert_cached_generation_is_the_forward, randomize_fusion

TEXTS = ["the braid reads text", "a quick fox jumps over the dog"]


def braid(paths, strategy="learned_weighted", **kw):
    return BraidedLLM(
        model_configs=paths, fusion_strategy=strategy, fusion_layers=[0, 1], fusion_dim=16, **kw
    )


@pytest.fixture(scope="module")
def inner_dirs(pico, cross_trio, tmp_path_factory):
    """Two saved inner braids with random fusion: one of same-tokenizer members, one whose second member
    reads with its own (WordPiece) tokenizer."""
    root = tmp_path_factory.mktemp("inner")
    plain = braid([pico("llama", 32, 2), pico("qwen2", 48, 3)])
    cross = braid([pico("llama", 32, 2, seed=1), cross_trio[1]], "router")
    for seed, (name, b) in enumerate({"plain": plain, "cross": cross}.items()):
        randomize_fusion(b, seed=seed + 3)
        b.save_pretrained(root / name)
    return {"plain": str(root / "plain"), "cross": str(root / "cross")}


def logits(b, texts=TEXTS):
    enc = b.tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return b(enc["input_ids"], enc["attention_mask"]).logits, enc["attention_mask"].bool()


@pytest.mark.parametrize("which", ["plain", "cross"])
def test_an_untrained_outer_braid_equals_its_inner_braid(inner_dirs, pico, which):
    outer = braid([inner_dirs[which], pico("gpt2", 64, 4)])
    assert isinstance(outer.models[0], BraidMember)
    assert outer.models[0].num_layers == 2  # the inner anchor's depth
    ours, mask = logits(outer)
    ref, _ = logits(BraidedLLM.from_pretrained(inner_dirs[which]))
    assert (ours[mask] - ref[mask]).abs().max() < 1e-5


def test_outer_fusion_reads_the_inner_braids_fused_stream(inner_dirs, pico):
    """The outer fusion acts on the inner braid: with random outer fusion the output moves, and it depends
    on the inner fusion (a braid of the same members with the inner fusion zeroed gives another output)."""
    outer = braid([pico("gpt2", 64, 4), inner_dirs["plain"]])
    randomize_fusion(outer, seed=7)
    fused, mask = logits(outer)
    alone, _ = logits(outer.models[0])
    assert (fused[mask] - alone[mask]).abs().max() > 1e-3
    with torch.no_grad():
        for p in outer.models[1].braid.fusion_parameters():
            p.zero_()
    zeroed, _ = logits(outer)
    assert (fused[mask] - zeroed[mask]).abs().max() > 1e-4


@pytest.mark.parametrize("which", ["plain", "cross"])
def test_cached_generation_equals_full_forward(inner_dirs, pico, tokenizer, which):
    outer = braid([pico("llama", 32, 2, seed=2), inner_dirs[which]], "attention")
    randomize_fusion(outer, seed=5)
    assert_cached_generation_is_the_forward(
        outer, tokenizer("the braid reads", return_tensors="pt")["input_ids"], 10
    )
    assert isinstance(outer.generate("the quick", max_new_tokens=6), str)


@pytest.mark.parametrize("trainable", [False, True])
def test_the_inner_fusion_trains_only_when_asked_and_saves_with_the_outer(
    inner_dirs, pico, tmp_path, trainable
):
    config = {"model_name": inner_dirs["plain"], "trainable": trainable}
    outer = braid([pico("gpt2", 64, 4), config])
    inner = outer.models[1].braid
    before = [p.detach().clone() for p in inner.fusion_parameters()]
    own = outer.num_fusion_parameters() - (inner.num_fusion_parameters() if trainable else 0)
    assert own == sum(p.numel() for p in outer.fusion_modules.parameters())
    train_fusion(
        outer, TEXTS * 4, config=TrainConfig(max_steps=3, batch_size=2, learning_rate=1e-2, progress=False)
    )
    moved = any(not torch.equal(a, b) for a, b in zip(before, inner.fusion_parameters(), strict=True))
    assert moved == trainable
    outer.save_pretrained(tmp_path / "outer")
    again = BraidedLLM.from_pretrained(tmp_path / "outer")
    a, mask = logits(outer)
    b, _ = logits(again)
    assert (a[mask] - b[mask]).abs().max() < 1e-5


def test_a_braid_member_must_share_the_anchors_tokenizer(inner_dirs, cross_trio):
    with pytest.raises(ValueError, match="share the anchor's tokenizer"):
        braid([cross_trio[2], inner_dirs["plain"]], "router")


def test_trainable_names_a_saved_braid(pico):
    with pytest.raises(ValueError, match="trainable applies to a saved braid"):
        braid([pico("llama", 32, 2), {"model_name": pico("qwen2", 48, 3), "trainable": True}])


def test_the_config_tree_shows_inner_members(inner_dirs, pico):
    outer = braid([inner_dirs["cross"], pico("gpt2", 64, 4)])
    rows = config_tree(outer.config)
    assert [(r.depth, r.index, r.anchor) for r in rows] == [
        (0, 0, True),
        (1, 0, True),
        (1, 1, False),
        (0, 1, False),
    ]
    assert rows[0].what == "braid: router, frozen" and rows[0].num_layers == 2
    assert rows[2].what == "qwen2" and rows[2].num_layers == 3


def test_braid_info_draws_the_tree(inner_dirs, pico, tmp_path):
    from typer.testing import CliRunner

    from cli import app

    braid([inner_dirs["cross"], pico("gpt2", 64, 4)]).save_pretrained(tmp_path / "outer")
    shown = CliRunner().invoke(app, ["info", str(tmp_path / "outer")], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    lines = [line for line in shown.output.splitlines() if "└ 0" in line or "└ 1" in line]
    assert len(lines) == 2 and "qwen2" in lines[1] and "braid: router, frozen" in shown.output
