"""CALM-style fusion: one-way into the anchor, queries from its full width, positions encoded."""

import pytest
import torch

from braid import BraidedLLM, ModelWrapper
from braid.fusion.calm import CalmFusion, CalmParams
from braid.generation import BraidSession
from tests.conftest import randomize_fusion


def braid(paths, **kw):
    return BraidedLLM(model_configs=paths, fusion_strategy="calm", fusion_layers=[0, 1], fusion_dim=32, **kw)


def test_untrained_calm_braid_is_exactly_its_anchor(trio, tokenizer):
    ids = tokenizer(["the braid reads the text", "a fox"], return_tensors="pt", padding=True)
    braided = braid(trio)
    with torch.no_grad():
        ours = braided(ids["input_ids"], ids["attention_mask"]).logits
        ref = ModelWrapper(trio[0])(ids["input_ids"], ids["attention_mask"]).logits
    assert torch.equal(ours, ref)


def test_only_the_anchor_receives_and_the_others_run_unchanged(trio, tokenizer):
    braided = braid(trio)
    assert all(m.receivers == [0] for m in braided.fusion_modules)
    randomize_fusion(braided, seed=1)
    ids = tokenizer("models exchange hidden states", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = braided(ids, output_hidden_states=True)
        plain = [m(ids) for m in braided.models]
    assert not torch.allclose(out.logits, plain[0].logits)
    for m in (1, 2):
        assert torch.equal(out.hidden_states[m][-1], plain[m].hidden_states[-1])


def test_causal_and_cached_steps_equal_the_full_forward(trio, tokenizer):
    braided = braid(trio, strategy_params={"window": 4})  # far offsets share a bucket
    randomize_fusion(braided, seed=2)
    ids = tokenizer("every member keeps its own cache while the braid", return_tensors="pt")["input_ids"]
    edited = ids.clone()
    edited[:, 6:] = (edited[:, 6:] + 7) % braided.anchor_model.vocab_size
    with torch.no_grad():
        full, other = braided(ids).logits[0], braided(edited).logits[0]
        session = BraidSession(braided)
        steps = [session.feed(ids[:, :4])[0]] + [
            session.feed(ids[:, t : t + 1])[0] for t in range(4, ids.shape[1])
        ]
    assert torch.allclose(full[:6], other[:6], atol=1e-5) and not torch.allclose(full[6:], other[6:])
    assert torch.allclose(torch.stack(steps), full[3:], atol=1e-4)


def test_offsets_are_encoded():
    """The same member states at other offsets give another update: attention sees where a key is."""
    torch.manual_seed(0)
    calm = CalmFusion([8, 8], fusion_dim=8, params=CalmParams(num_heads=2, window=4), receivers=[0])
    with torch.no_grad():
        calm.gate.fill_(1.0)
        calm.offset_bias.copy_(torch.tensor([[0.0, 0.0, 9.0, 0.0, 0.0]] * 2))  # prefer two positions back
    states = [torch.randn(1, 5, 8), torch.randn(1, 5, 8)]
    out = calm(states)[0]
    shifted = calm([states[0], torch.roll(states[1], 1, dims=1)])[0]
    assert out.shape == (1, 5, 8) and not torch.allclose(out[:, 3:], shifted[:, 3:])


def test_calm_learns_with_its_gate_at_zero(trio, tokenizer):
    braided = braid(trio)
    braided.train()
    enc = tokenizer(["the braid reads the text"], return_tensors="pt")
    loss = braided(enc["input_ids"], labels=enc["input_ids"]).loss
    loss.backward()
    assert braided.fusion_modules[0].gate.grad.abs().sum() > 0


@pytest.mark.parametrize("combo", ["calm+pointer", "calm+output_router"])
def test_calm_combines_with_output_level_fusion(trio, tokenizer, combo):
    braided = BraidedLLM(model_configs=trio, fusion_strategy=combo, fusion_layers=[0, 1], fusion_dim=32)
    ids = tokenizer("a quick brown fox", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(braided(ids).logits, ModelWrapper(trio[0])(ids).logits)


def test_decode_steps_follow_a_trained_bias_and_outgrow_the_table():
    """Decode steps read the offset bias from a table: it must follow the bias as it is trained and grow
    past its first length (256), matching the full pass at every step."""
    torch.manual_seed(0)
    calm = CalmFusion([8, 8, 8], fusion_dim=8, params=CalmParams(num_heads=2, window=4), receivers=[0])
    for p in calm.parameters():
        p.data.normal_()
    states = [torch.randn(1, 300, 8) for _ in range(3)]
    with torch.no_grad():
        for bump in (0.0, 1.5):
            calm.offset_bias[:, 0] += bump  # a trained bias: the table must not go stale
            full = calm(states)[0]
            cache: dict = {}
            steps = [calm([s[:, t : t + 1] for s in states], None, cache)[0] for t in range(300)]
            assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
