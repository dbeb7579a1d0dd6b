import pytest
import torch

from braid import BraidedLLM, ModelWrapper
from tests.conftest import randomize_fusion

STRATEGIES = ["learned_weighted", "attention", "router"]


def braid(paths, strategy, **kw):
    return BraidedLLM(
        model_configs=[{"model_name": p} for p in paths], fusion_strategy=strategy, fusion_dim=32, **kw
    )


@pytest.fixture(scope="module")
def batch(tokenizer):
    enc = tokenizer(["the braid reads the text", "a fox"], return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("n_members", [2, 3])
def test_untrained_braid_equals_its_anchor(trio, batch, strategy, n_members):
    ids, mask = batch
    braided = braid(trio[:n_members], strategy, fusion_layers=[0, 1])
    anchor = ModelWrapper(trio[0])
    with torch.no_grad():
        ours = braided(ids, attention_mask=mask).logits
        ref = anchor(ids, attention_mask=mask).logits
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_untrained_braid_equals_a_non_first_anchor(trio, batch, strategy):
    ids, mask = batch
    braided = braid(trio, strategy, anchor=2, fusion_layers=[1, 3])
    with torch.no_grad():
        assert torch.allclose(braided(ids, mask).logits, ModelWrapper(trio[2])(ids, mask).logits, atol=1e-5)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_last_point_updates_only_the_anchor(trio, strategy):
    braided = braid(trio, strategy, fusion_layers=[0, 1])
    assert [m.receivers for m in braided.fusion_modules] == [[0, 1, 2], [0]]
    assert len(braided.fusion_modules[1].up) == 1


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fusion_changes_every_member_stream(trio, batch, strategy):
    ids, mask = batch
    braided = braid(trio, strategy, fusion_layers=[0, 1])
    randomize_fusion(braided)
    with torch.no_grad():
        out = braided(ids, mask, output_hidden_states=True)
        plain = [m(ids, mask) for m in braided.models]
    for m, layers in enumerate(braided.lockstep.plan):
        k = layers[0] + 1  # hidden_states index of the fused block's output
        assert torch.equal(out.hidden_states[m][k - 1], plain[m].hidden_states[k - 1])  # before: untouched
        assert not torch.allclose(out.hidden_states[m][k], plain[m].hidden_states[k])  # after: fused
    assert not torch.allclose(out.logits, plain[0].logits)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_causality_later_tokens_never_change_earlier_logits(trio, strategy):
    braided = braid(trio, strategy, fusion_layers=[0, 1])
    randomize_fusion(braided, seed=3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        ids = torch.randint(4, braided.anchor_model.vocab_size, (2, 12), generator=gen)
        t = int(torch.randint(1, 11, (1,), generator=gen))
        edited = ids.clone()
        edited[:, t:] = torch.randint(4, braided.anchor_model.vocab_size, edited[:, t:].shape, generator=gen)
        with torch.no_grad():
            a, b = braided(ids).logits, braided(edited).logits
        assert torch.allclose(a[:, :t], b[:, :t], atol=1e-6, rtol=0)
        assert not torch.allclose(a[:, t:], b[:, t:])


def test_loss_is_next_token_cross_entropy(trio, batch):
    ids, mask = batch
    braided = braid(trio[:2], "router", fusion_layers=[1])
    labels = ids.masked_fill(mask == 0, -100)
    out = braided(ids, mask, labels=labels)
    ref = ModelWrapper(trio[0]).model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert torch.allclose(out.loss, ref, atol=1e-5)


def test_only_fusion_parameters_are_trainable(trio):
    braided = braid(trio, "attention", fusion_layers=[0, 1])
    trainable = {n for n, p in braided.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("fusion_modules.") for n in trainable)
    assert braided.num_fusion_parameters() == sum(p.numel() for p in braided.fusion_modules.parameters())
    braided.train()
    assert all(not m.training for m in braided.models)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_right_padding_does_not_leak_into_real_positions(trio, tokenizer, strategy):
    braided = braid(trio, strategy, fusion_layers=[0, 1])
    randomize_fusion(braided, seed=7)
    enc = tokenizer(
        ["models exchange hidden states at chosen layers", "a fox"], return_tensors="pt", padding=True
    )
    alone = tokenizer(["a fox"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        batched = braided(enc["input_ids"], enc["attention_mask"]).logits
        single = braided(alone).logits
    assert torch.allclose(batched[1, : alone.shape[1]], single[0], atol=1e-5)


def test_a_tokenizer_called_with_truncation_is_still_the_same_tokenizer(trio):
    """Calls with truncation or padding leave state on a fast tokenizer's backend; a member sharing the
    anchor's tokenizer must not turn into a cross-tokenizer member after a training batch."""
    from braid.braided import same_tokenizer

    a, b = ModelWrapper(trio[0]).tokenizer, ModelWrapper(trio[0]).tokenizer
    a(["a text", "a longer text"], truncation=True, max_length=4, padding=True)
    assert a is not b and same_tokenizer(a, b)
    braided = BraidedLLM(model_configs=[trio[0], trio[0]], fusion_strategy="output_router", fusion_layers=[])
    braided.tokenizer("a text to train on", truncation=True, max_length=4)
    again = BraidedLLM(
        model_configs=[trio[0], trio[0]], fusion_strategy="output_router", fusion_layers=[],
        models=[braided.models[0], ModelWrapper(trio[0])],
    )  # fmt: skip
    assert again.cross_members == set()


@pytest.mark.parametrize(("strategy", "layers", "with_logits"), [
    ("calm", [0, 1], {0}),
    ("output_router", [], {0, 1, 2}),
    ("learned_weighted+output_router", [0, 1], {0, 1, 2}),
])  # fmt: skip
def test_members_skip_the_lm_head_unless_their_logits_are_read(trio, batch, strategy, layers, with_logits):
    """A member's next-token logits cost a full-vocabulary matmul per token; a hidden-state braid reads the
    anchor's alone, an output-level one every member's."""
    from braid.alignment import Alignment

    braided = braid(trio, strategy, fusion_layers=layers)
    ids, _ = batch
    with torch.no_grad():
        outs = braided.run_members([{"input_ids": ids}] * 3, Alignment.identity(None, 3))
    assert {m for m, out in enumerate(outs) if out.logits.shape[1] == ids.shape[1]} == with_logits
    assert all(out.logits.shape[1] == 0 for m, out in enumerate(outs) if m not in with_logits)
