"""The --tiny zoo builds, loads, has model cards, and reproduces with the same seed."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from braid import BraidedLLM, ModelWrapper
from braid.zoo import build_zoo, load_cards, zoo_spec
from braid.zoo.build import _train_member, _train_tokenizer
from braid.zoo.domains import DOMAINS, get_domain
from braid.zoo.evaluate import char_perplexity
from cli import app

CARD_FIELDS = {"domain", "parameters", "data", "final_train_loss", "held_out_char_perplexity"}


@pytest.mark.slow
def test_tiny_zoo_builds_loads_and_braids(tiny_zoo):
    _, paths = tiny_zoo
    spec = zoo_spec(tiny=True)
    assert list(paths) == [m.name for m in spec.members]
    assert len({m.family for m in spec.members}) == 4 and len(spec.tokenizers) == 3
    wrappers = [ModelWrapper(p) for p in paths.values()]
    assert len({w.hidden_size for w in wrappers}) >= 2 and len({len(w.tokenizer) for w in wrappers}) == 3
    braided = BraidedLLM(model_configs=list(paths.values()), fusion_dim=16, fusion_layers=[0, 1])
    assert braided.cross_members == {2, 3}  # code shares the prose tokenizer; the others do not
    assert isinstance(braided.generate("The function", max_new_tokens=5), str)


@pytest.mark.slow
def test_model_cards_exist_and_describe_the_model(tiny_zoo):
    cache, paths = tiny_zoo
    cards = load_cards(tiny=True, cache_dir=cache)
    assert len(cards) == len(paths)
    for card, path in zip(cards, paths.values(), strict=True):
        assert set(card) >= CARD_FIELDS
        assert card["parameters"] == ModelWrapper(path).num_parameters
        assert 1.0 < card["held_out_char_perplexity"] < 50
        assert (Path(path) / "README.md").read_text().startswith(f"# {card['name']}")
    result = CliRunner().invoke(app, ["zoo", "list", "--tiny", "--cache-dir", str(cache)], terminal_width=200)
    assert result.exit_code == 0 and "prose-llama" in result.stdout
    assert str(Path(paths["prose-llama"]).parent) in result.stdout.replace("\n", "")  # where the zoo lives
    empty = CliRunner().invoke(app, ["zoo", "list", "--cache-dir", str(cache)], terminal_width=200)
    assert empty.exit_code == 0 and "no zoo members built yet" in empty.stdout and "--tiny" in empty.stdout


@pytest.mark.slow
def test_cached_zoo_is_reused(tiny_zoo):
    cache, paths = tiny_zoo
    stamps = {n: (Path(p) / "card.json").stat().st_mtime_ns for n, p in paths.items()}
    assert build_zoo(tiny=True, cache_dir=cache, progress=False) == paths
    assert stamps == {n: (Path(p) / "card.json").stat().st_mtime_ns for n, p in paths.items()}


def test_same_seed_reproduces_a_member(tmp_path):
    spec = zoo_spec(tiny=True)
    member = spec.member("arith-gpt2").model_copy(update={"steps": 20})
    tok = _train_tokenizer(spec.tokenizers[member.tokenizer], seed=0)
    for run in ("a", "b"):
        _train_member(member, tok, tmp_path / run, seed=0, progress=False)
    a, b = (load_file(tmp_path / r / "model.safetensors") for r in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    cards = [json.loads((tmp_path / r / "card.json").read_text()) for r in ("a", "b")]
    assert cards[0] == cards[1]


@pytest.mark.parametrize("name", ["en-bpe", "arith-unigram", "facts-wordpiece"])
def test_tokenizers_train_to_the_same_bytes(name):
    """The WordPiece trainer numbers its vocabulary in hash order and the Unigram trainer's scores vary
    in the last bits: the zoo canonicalises both, so every build gives its models the same ids."""
    spec = zoo_spec(tiny=True).tokenizers[name]
    first, again = (_train_tokenizer(spec, seed=0).backend_tokenizer.to_str() for _ in range(2))
    assert first == again


def test_domains_are_offline_deterministic_and_split():
    for name in DOMAINS:
        first, again = get_domain(name, seed=0), get_domain(name, seed=0)
        assert first == again and first.train and first.held_out
        assert not set(first.held_out) & set(first.train) or name == "facts"
    with pytest.raises(ValueError, match="valid: arithmetic, code, facts, prose"):
        get_domain("poetry")


def test_char_perplexity_of_a_uniform_model(tokenizer):
    texts = ["the braid reads the text", "a fox"]
    vocab = len(tokenizer)
    ppl = char_perplexity(lambda ids, mask: torch.zeros(*ids.shape, vocab), tokenizer, texts)
    enc = tokenizer(texts, return_offsets_mapping=True)
    tokens = sum(len(ids) - 1 for ids in enc["input_ids"])
    chars = sum(o[-1][1] - o[0][1] for o in enc["offset_mapping"])
    assert ppl == pytest.approx(vocab ** (tokens / chars), rel=1e-5)
