import pytest
import torch
from transformers import AutoModelForCausalLM

from braid import ModelWrapper
from braid.zoo import FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_wrapper_matches_plain_hf_model(pico, tokenizer, family):
    path = pico(family, 48, 3)
    wrapper = ModelWrapper(path)
    plain = AutoModelForCausalLM.from_pretrained(path).eval()
    enc = wrapper.encode("the quick brown fox")
    with torch.no_grad():
        ours = wrapper.forward(input_ids=enc["input_ids"])
        ref = plain(input_ids=enc["input_ids"], output_hidden_states=True)
    assert torch.equal(ours.logits, ref.logits)
    assert len(ours.hidden_states) == wrapper.num_layers + 1 == 4
    for a, b in zip(ours.hidden_states, ref.hidden_states, strict=True):
        assert torch.equal(a, b)
    layer2 = wrapper.get_layer_output(input_ids=enc["input_ids"], layer_idx=2)
    assert torch.equal(layer2, ref.hidden_states[2])


def test_encode_gives_offsets(pico):
    wrapper = ModelWrapper(pico())
    text = "the lazy dog"
    enc = wrapper.encode(text)
    ids, offsets = enc["input_ids"][0], enc["offsets"][0]
    assert offsets.shape == (len(ids), 2)
    pieces = "".join(text[s:e] for s, e in offsets.tolist())
    assert pieces == text
    assert wrapper.decode(ids) == text


def test_inject_edits_a_block_output_and_later_blocks_see_it(pico):
    wrapper = ModelWrapper(pico("llama", 32, 3))
    ids = wrapper.encode("fusion modules")["input_ids"]
    with torch.no_grad():
        base = wrapper.forward(input_ids=ids)
        with wrapper.inject({1: lambda h: h + 1.0}):
            edited = wrapper.forward(input_ids=ids)
        again = wrapper.forward(input_ids=ids)
    assert torch.equal(edited.hidden_states[1], base.hidden_states[1])
    assert not torch.allclose(edited.hidden_states[3], base.hidden_states[3])
    assert torch.equal(again.logits, base.logits)  # hooks are gone after the context


def test_layer_index_out_of_range_is_clear(pico):
    wrapper = ModelWrapper(pico())
    with pytest.raises(IndexError, match="layer_idx=9"):
        wrapper.get_layer_output(input_ids=torch.tensor([[5, 6]]), layer_idx=9)
