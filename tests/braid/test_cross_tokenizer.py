"""Cross-tokenizer braids (issue 3): members read the anchor's visible text through their own tokenizers."""

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from braid import BraidedLLM, ModelWrapper
from braid.generation import BraidSession, generate_tokens
from braid.sampling import SamplingParams
from braid.tokenview import member_tokenize
from tests.conftest import randomize_fusion

STRATEGIES = ["learned_weighted", "attention", "router", "calm"]
ALPHABET = "abcdefghij ,.xyz😀日本語é\u0301\t\n"


def braid(paths, strategy, **kw):
    return BraidedLLM(
        model_configs=paths, fusion_strategy=strategy, fusion_layers=[0, 1], fusion_dim=32, **kw
    )


@pytest.fixture(scope="module", params=STRATEGIES)
def fused_cross(request, cross_trio):
    braided = braid(cross_trio, request.param)
    randomize_fusion(braided, seed=4)
    return braided


def test_members_really_differ(cross_trio):
    toks = [ModelWrapper(p).tokenizer for p in cross_trio]
    assert len({len(t) for t in toks}) == 3
    assert [type(t.backend_tokenizer.model).__name__ for t in toks] == ["BPE", "WordPiece", "Unigram"]
    assert braid(cross_trio, "router").cross_members == {1, 2}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_untrained_cross_braid_equals_its_anchor(cross_trio, strategy):
    braided = braid(cross_trio, strategy)
    enc = braided.tokenizer(
        ["the braid reads 😀 日本 e\u0301  text", "a fox"], return_tensors="pt", padding=True
    )
    with torch.no_grad():
        ours = braided(enc["input_ids"], enc["attention_mask"]).logits
        ref = braided.models[0](enc["input_ids"], enc["attention_mask"]).logits
    assert torch.allclose(ours, ref, atol=1e-5, rtol=0)


@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_causality_under_random_texts_and_edits(fused_cross, data):
    """Editing the text after anchor token t changes no fused output at or before t."""
    text = data.draw(st.text(alphabet=ALPHABET, min_size=4, max_size=24))
    cut = data.draw(st.integers(min_value=1, max_value=len(text)))
    edit = data.draw(st.text(alphabet=ALPHABET, min_size=1, max_size=8))
    tok = fused_cross.tokenizer
    a = tok(text, add_special_tokens=False)["input_ids"]
    b = tok(text[:cut] + edit, add_special_tokens=False)["input_ids"]
    same = 0
    while same < min(len(a), len(b)) and a[same] == b[same]:
        same += 1
    if same == 0:
        return
    with torch.no_grad():
        la = fused_cross(torch.tensor([a])).logits[0, :same]
        lb = fused_cross(torch.tensor([b])).logits[0, :same]
    assert torch.allclose(la, lb, atol=1e-5, rtol=0)


def test_incremental_generation_equals_no_cache_recompute(fused_cross):
    eos = fused_cross.tokenizer.eos_token_id
    fused_cross.tokenizer.eos_token_id = None
    crops = 0
    try:
        for prompt in ["the braid reads", "日本 😀", "a quick  brown"]:
            ids = fused_cross.tokenizer(prompt, return_tensors="pt")["input_ids"]
            tokens = list(generate_tokens(fused_cross, ids, SamplingParams(max_new_tokens=12)))
            seq = ids
            with torch.no_grad():
                for token in tokens:
                    assert int(fused_cross(seq).logits[0, -1].argmax()) == token
                    seq = torch.cat([seq, torch.tensor([[token]])], 1)
            crops += count_retokenizations(fused_cross, seq)
    finally:
        fused_cross.tokenizer.eos_token_id = eos
    assert crops > 0  # some member's last token changed as the text grew (a merge across the boundary)


def count_retokenizations(braided, seq: torch.Tensor) -> int:
    """Feed ``seq`` token by token and count steps where a member had to drop cached tokens."""
    session = BraidSession(braided)
    session.feed(seq[:, :1])
    dropped = 0
    for token in seq[0, 1:].tolist():
        before = {m: list(tokens) for m, tokens in session.member_tokens.items()}
        session.feed(torch.tensor([[token]]))
        for m, old in before.items():
            new = session.member_tokens[m]
            dropped += new[: len(old)] != old
    return dropped


def test_shared_tokenizer_through_the_general_path_is_exactly_identity(trio):
    fast = braid(trio, "attention")
    ids = fast.tokenizer(["the braid reads the text"], return_tensors="pt")["input_ids"]
    general = braid(trio, "attention", alignment="general")
    randomize_fusion(fast, seed=9)
    general.load_state_dict(fast.state_dict())
    assert general.cross_members == {1, 2} and fast.cross_members == set()
    text = fast.tokenizer.decode(ids[0])
    assert fast.tokenizer(text, add_special_tokens=False)["input_ids"] == ids[0].tolist()  # canonical ids
    with torch.no_grad():
        assert torch.equal(general(ids).logits, fast(ids).logits)
        # the same holds token by token through the incremental path (canonical ids again)
        session = BraidSession(general)
        session.feed(ids[:, :2])
        steps = [session.feed(ids[:, t : t + 1]) for t in range(2, ids.shape[1])]
        assert torch.allclose(torch.cat(steps), fast(ids).logits[0, 2:], atol=1e-5)


def test_tokenizers_without_offsets_fall_back_to_decoded_strings(cross_trio):
    """Where decoding is lossless, decoded ends equal the offset mapping's (Unigram has no <unk> here)."""
    text = "the braid reads 😀 日本 text"
    for path, sample in ((cross_trio[0], text), (cross_trio[2], "the braid reads the text")):
        tok = ModelWrapper(path).tokenizer
        assert member_tokenize(tok, [sample], use_offsets=False) == member_tokenize(
            tok, [sample], use_offsets=True
        )


def test_braid_with_decoded_ends_equals_the_braid_with_offsets(trio):
    braided = braid(trio, "attention", alignment="general")
    randomize_fusion(braided)
    ids = braided.tokenizer(["the braid reads 😀 日本 text"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        with_offsets = braided(ids).logits
        braided.use_offsets = False
        assert torch.allclose(braided(ids).logits, with_offsets, atol=1e-6)


@pytest.mark.parametrize(
    "text", ["😀😀 日本語のテキスト", "e\u0301e\u0301 cafe\u0301", "a    \t\n\n   b", "     ", "🇫🇷 👩‍👩‍👧 ok"]
)
def test_unicode_and_whitespace_do_not_break_alignment(fused_cross, text):
    ids = fused_cross.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = fused_cross(ids).logits
    assert torch.isfinite(logits).all()
    session = BraidSession(fused_cross)
    session.feed(ids[:, :1])
    for t in range(1, ids.shape[1]):
        step = session.feed(ids[:, t : t + 1])
        assert torch.allclose(step, logits[:, t], atol=1e-4)
    assert session.visible == text.rstrip("\ufffd") or text.startswith(session.visible)


def test_random_generation_runs_across_tokenizers(fused_cross):
    rng = random.Random(0)
    prompt = "".join(rng.choice(ALPHABET) for _ in range(10))
    text = fused_cross.generate(prompt, max_new_tokens=10, temperature=1.0, seed=1)
    assert isinstance(text, str)


@pytest.fixture(scope="module")
def cross_facts(tmp_path_factory, tokenizer):
    """A WordPiece expert that memorised the facts, and a byte-level BPE anchor that knows their format."""
    from braid.zoo import build_model, pretrain_lm, train_tokenizer
    from braid.zoo.corpora import FactsDomain, value_labelled
    from tests.conftest import PROSE

    root = tmp_path_factory.mktemp("cross-facts")
    domain = FactsDomain.make(60, seed=0)
    expert_tok = train_tokenizer(PROSE * 20 + domain.format_texts(50), vocab_size=200, kind="wordpiece")
    expert = build_model("qwen2", len(expert_tok), hidden=64, layers=3, seed=1)
    pretrain_lm(expert, expert_tok, domain.texts(2000, seed=1), steps=600, lr=3e-3)
    anchor = build_model("llama", len(tokenizer), hidden=48, layers=2, seed=2)
    pretrain_lm(anchor, tokenizer, domain.format_texts(2000, seed=2), steps=200, lr=3e-3)
    paths = []
    for name, model, tok in (("anchor", anchor, tokenizer), ("expert", expert, expert_tok)):
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        paths.append(str(root / name))
    train = value_labelled(tokenizer, domain.texts(400, seed=3, subset=slice(0, 40)))
    held_out = value_labelled(tokenizer, domain.texts(60, seed=4, subset=slice(40, 60)))
    return paths, train, held_out


@pytest.mark.slow
def test_trained_cross_tokenizer_braid_reads_the_expert(cross_facts):
    from braid.train import TrainConfig, evaluate, tokenize_dataset, train_fusion

    paths, train, held_out = cross_facts
    torch.manual_seed(0)  # fusion init uses the global RNG; 400 steps leave a margin over float-order noise
    braided = BraidedLLM(
        model_configs=paths, fusion_strategy="attention", fusion_layers=[0, 1], fusion_dim=32
    )
    assert braided.cross_members == {1}
    held = tokenize_dataset(braided, held_out, 128)
    anchor_loss = evaluate(braided, held, 16, pad_id=2)
    history = train_fusion(
        braided, train, TrainConfig(max_steps=400, learning_rate=3e-3, progress=False), eval_dataset=held_out
    )
    # facts neither the anchor nor the fusion saw; whole-suite runs measured 0.56-0.61 of the anchor's loss
    # (the session's trained fixtures vary slightly between runs), an untrained fusion 1.0
    assert history.final_eval_loss < 0.65 * anchor_loss
