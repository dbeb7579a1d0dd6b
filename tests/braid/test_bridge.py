"""The character-level bridge: member token surfaces, the anchor's next token, and members with their own
tokenizer read into the anchor's vocabulary (byte-level BPE anchor; WordPiece and Unigram members)."""

import pytest
import torch

from braid import ModelWrapper
from braid.bridge import AnchorMap, BridgeParams, CharBridge, TokenSurface, word_start
from braid.bridge.surface import CONT, WORD
from braid.tokenview import visible_ends
from braid.zoo import build_model, pretrain_lm, train_tokenizer
from tests.conftest import PROSE

REPEATED = "the quick brown fox jumps over the lazy dog, then sleeps. "


@pytest.fixture(scope="module")
def kinds():
    sizes = {"bpe": 400, "wordpiece": 200, "unigram": 200}  # byte-level BPE: 256 bytes before any merge
    return {kind: train_tokenizer(PROSE * 20, vocab_size=n, kind=kind) for kind, n in sizes.items()}


def test_surfaces_of_the_three_tokenizer_kinds(kinds):
    wp = TokenSurface.of(kinds["wordpiece"])
    assert wp.lossy and not wp.virtual_space
    piece = next(
        i
        for i, t in enumerate(kinds["wordpiece"].convert_ids_to_tokens(list(range(200))))
        if t.startswith("##")
    )
    assert wp.kinds[piece] == CONT and wp.text(piece, word_start=True, text_start=False) is None
    word = kinds["wordpiece"].convert_tokens_to_ids("the")
    assert wp.kinds[word] == WORD and wp.text(word, word_start=True, text_start=False) == "the"
    uni = TokenSurface.of(kinds["unigram"])
    spaced = next(i for i, t in enumerate(uni.texts) if t and t.startswith(" ") and len(t) > 1)
    assert uni.virtual_space and uni.text(spaced, True, text_start=True) == uni.texts[spaced][1:]
    bpe = TokenSurface.of(kinds["bpe"])
    assert not bpe.lossy and all(t is None or "Ġ" not in t for t in bpe.texts)
    assert all(t is None for i, t in enumerate(bpe.texts) if i in kinds["bpe"].all_special_ids)


def test_word_start_is_the_last_pre_token(kinds):
    assert word_start(kinds["unigram"], "12+3 45") == 4  # Metaspace: the word " 45" starts at the space
    assert word_start(kinds["wordpiece"], "abc=de") == 4  # BERT: punctuation splits words
    assert word_start(kinds["bpe"], "the fox") == 3


def test_anchor_map_follows_the_anchor_tokenizer(kinds):
    amap = AnchorMap(kinds["bpe"])
    tok = kinds["bpe"]
    text = "the quick brown fox"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    visible, ends = visible_ends(tok, ids)
    for t in range(len(ids) - 1):
        assert amap.next_tokens(visible[: ends[t]], [visible[ends[t] :]]) == [ids[t + 1]]
    # a continuation the anchor would have merged into its last token is impossible
    strings = (tok.convert_tokens_to_string([t]) for t in tok.convert_ids_to_tokens(list(range(len(tok)))))
    merged = next(s for s in strings if len(s) > 2 and s.strip().isalpha())  # one token, several letters
    assert amap.next_tokens(merged[:-1], [merged[-1]]) == [None]


@pytest.fixture(scope="module")
def trained_members(tmp_path_factory, kinds):
    """A WordPiece and a Unigram member that learned one repeated sentence, and the BPE anchor tokenizer."""
    root = tmp_path_factory.mktemp("bridge")
    paths = {}
    for i, kind in enumerate(("wordpiece", "unigram")):
        tok = kinds[kind]
        model = build_model("llama", len(tok), hidden=48, layers=2, seed=i)
        pretrain_lm(model, tok, [REPEATED * 3], steps=300, lr=5e-3, batch_size=4, max_length=160, seed=i)
        model.save_pretrained(root / kind)
        tok.save_pretrained(root / kind)
        paths[kind] = ModelWrapper(str(root / kind))
    return paths


@pytest.mark.parametrize("kind", ["wordpiece", "unigram"])
def test_a_member_that_knows_the_text_predicts_the_anchor_tokens(trained_members, kinds, kind):
    anchor = kinds["bpe"]
    bridge = CharBridge(trained_members[kind], anchor, BridgeParams())
    ids = anchor(REPEATED * 2, add_special_tokens=False)["input_ids"]
    dist_ids, probs = bridge.text_dists(ids)  # (R, T, K)
    assert torch.all(probs >= 0) and torch.all(probs.sum(-1) <= 1 + 1e-5)
    # the probability of the true next anchor token in the reading that fits (WordPiece: a space before a
    # new word or not), over the second copy of the sentence
    hits = [
        float(max(probs[r, t][dist_ids[r, t] == ids[t + 1]].sum() for r in range(probs.shape[0])))
        for t in range(len(ids) // 2, len(ids) - 1)
    ]
    assert sum(hits) / len(hits) > 0.8


@pytest.mark.parametrize("kind", ["wordpiece", "unigram"])
def test_distributions_are_causal_and_generation_reads_the_same(trained_members, kinds, kind):
    anchor = kinds["bpe"]
    bridge = CharBridge(trained_members[kind], anchor, BridgeParams(expand=4))
    a = anchor("the quick brown fox jumps", add_special_tokens=False)["input_ids"]
    b = a[:4] + anchor(" over the lazy", add_special_tokens=False)["input_ids"]
    ids_a, probs_a = bridge.text_dists(a)
    ids_b, probs_b = bridge.text_dists(b)
    assert torch.equal(ids_a[:, :4], ids_b[:, :4]) and torch.allclose(probs_a[:, :4], probs_b[:, :4])
    visible, ends = visible_ends(anchor, a)
    session = bridge.session()
    for t, end in enumerate(ends):
        step_ids, step_probs = session.step(visible[:end])
        assert torch.equal(step_ids, ids_a[:, t].long()) and torch.allclose(
            step_probs, probs_a[:, t], atol=1e-6
        )


def test_memo_round_trips_through_a_file_only_with_the_same_settings(trained_members, kinds, tmp_path):
    anchor = kinds["bpe"]
    ids = anchor("the quick brown fox", add_special_tokens=False)["input_ids"]
    bridge = CharBridge(trained_members["unigram"], anchor, BridgeParams(expand=4))
    expected = bridge.text_dists(ids)
    bridge.save_memo(tmp_path / "memo.pt")
    again = CharBridge(trained_members["unigram"], anchor, BridgeParams(expand=4))
    assert again.load_memo(tmp_path / "memo.pt") == 1
    assert all(torch.equal(x, y) for x, y in zip(again.memo[tuple(ids)], expected, strict=True))
    other = CharBridge(trained_members["unigram"], anchor, BridgeParams(expand=5))
    assert other.load_memo(tmp_path / "memo.pt") == 0 and not other.memo
    assert other.load_memo(tmp_path / "missing.pt") == 0
