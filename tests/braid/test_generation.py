import pytest
import torch

from braid import BraidedLLM
from braid.generation import _holdback, sample_next, text_pieces
from braid.sampling import SamplingParams
from tests.conftest import assert_cached_generation_is_the_forward, randomize_fusion


@pytest.fixture(scope="module", params=["learned_weighted", "attention", "router"])
def fused_trio(request, trio):
    braided = BraidedLLM(
        model_configs=trio, fusion_strategy=request.param, fusion_layers=[0, 1], fusion_dim=32
    )
    randomize_fusion(braided, seed=1)
    return braided


def test_cached_generation_equals_full_forward_at_every_step(fused_trio, tokenizer):
    assert_cached_generation_is_the_forward(
        fused_trio, tokenizer("the braid reads", return_tensors="pt")["input_ids"], 16
    )


def test_generate_text_and_stream_agree(fused_trio):
    text = fused_trio.generate("the quick", max_new_tokens=12)
    pieces = list(fused_trio.generate("the quick", max_new_tokens=12, stream=True))
    assert isinstance(text, str) and "".join(pieces) == text


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ([], "the braid reads the text, then writes"),
        (["the text"], "the braid reads "),
        (["s", "x"], "the braid read"),
    ],
)
def test_text_pieces_cut_at_the_first_stop_string(tokenizer, stop, expected):
    text = "the braid reads the text, then writes"
    tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces = list(text_pieces(iter(tokens), tokenizer, stop))
    assert "".join(pieces) == expected
    assert all(pieces)
    if stop:
        assert not any(s in "".join(pieces) for s in stop)


def test_sampling_is_seeded_and_respects_top_k():
    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(0))
    params = SamplingParams(temperature=1.0, top_k=3, seed=0)
    draws = [sample_next(logits, params, torch.Generator().manual_seed(7)) for _ in range(3)]
    assert len(set(draws)) == 1
    top3 = set(torch.topk(logits, 3).indices[0].tolist())
    gen = torch.Generator().manual_seed(1)
    assert {sample_next(logits, params, gen) for _ in range(50)} <= top3
    nucleus = SamplingParams(temperature=1.0, top_p=1e-6)
    assert sample_next(logits, nucleus, gen) == int(logits.argmax())


def test_stream_holds_back_possible_stop_prefixes():
    assert _holdback("hello wor", ["world"]) == 3
    assert _holdback("hello", ["world"]) == 0
    assert _holdback("abc\ufffd", []) == 1


def test_bad_sampling_params_are_rejected(fused_trio):
    with pytest.raises(ValueError, match="temperature"):
        fused_trio.generate("x", temperature=-1)


def test_a_prompt_no_member_can_hold_is_refused_before_any_work(fused_trio):
    """A 20k-character prompt on 512-position members once grew attention fusion's memory until the kernel
    killed the process; now it is a ValueError naming the member and its limit, before the prefill."""
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match="more than its 512 positions; shorten the prompt"):
        fused_trio.generate("many words " * 2000, max_new_tokens=8)
    assert time.perf_counter() - start < 5
    with pytest.raises(ValueError, match="the prompt is empty"):
        fused_trio.generate("", max_new_tokens=4)
    assert fused_trio.generate("the braid", max_new_tokens=2) is not None


def test_a_temperature_near_zero_is_greedy_not_nan():
    """5e-324 became 0 in float32 and the division made NaN probabilities (a 500 over HTTP)."""
    logits = torch.randn(1, 40) * 30
    for t in (5e-324, 1e-300, 1e-7):
        assert sample_next(logits, SamplingParams(temperature=t, top_p=0.5), torch.Generator()) == int(
            logits.argmax()
        )
