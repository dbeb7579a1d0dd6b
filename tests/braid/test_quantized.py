import pytest
import torch

from braid import BraidedLLM
from tests.conftest import randomize_fusion

pytest.importorskip("bitsandbytes")


@pytest.mark.parametrize("strategy", ["learned_weighted", "attention"])
def test_8bit_member_braids_and_generates_on_cpu(pico, tokenizer, strategy):
    anchor, expert = pico("llama", 64, 2), pico("qwen2", 64, 2)
    braided = BraidedLLM(
        model_configs=[{"model_name": anchor}, {"model_name": expert, "quantization": "8bit"}],
        fusion_strategy=strategy,
        fusion_layers=[0, 1],
        fusion_dim=32,
    )
    linear = braided.models[1].model.model.layers[0].mlp.down_proj
    assert type(linear).__name__ == "Linear8bitLt"
    ids = tokenizer(["the quick brown fox"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        identity = braided(ids).logits
        assert torch.allclose(identity, braided.models[0](ids).logits, atol=1e-5)
        randomize_fusion(braided)
        assert not torch.allclose(braided(ids).logits, identity)
    text = braided.generate("the quick", max_new_tokens=8)
    assert isinstance(text, str)
    labels = ids.clone()
    braided(ids, labels=labels).loss.backward()  # gradients flow through the 8-bit member's states
    assert all(p.grad is not None for p in braided.fusion_parameters())
