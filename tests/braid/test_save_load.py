import pytest
import torch

from braid import BraidedLLM
from tests.conftest import randomize_fusion


@pytest.fixture
def fused(trio):
    braided = BraidedLLM(model_configs=trio, fusion_strategy="attention", fusion_layers=[0, 1], fusion_dim=32)
    randomize_fusion(braided, seed=5)
    return braided


@pytest.fixture(scope="module")
def ids(tokenizer):
    return tokenizer(["models exchange hidden states"], return_tensors="pt")["input_ids"]


def test_save_then_load_fusion_layers_reproduces_logits(fused, trio, ids, tmp_path):
    fused.save_fusion_layers(tmp_path / "fusion.pt")
    fresh = BraidedLLM(model_configs=trio, fusion_strategy="attention", fusion_layers=[0, 1], fusion_dim=32)
    with torch.no_grad():
        assert not torch.equal(fresh(ids).logits, fused(ids).logits)
        fresh.load_fusion_layers(tmp_path / "fusion.pt")
        assert torch.equal(fresh(ids).logits, fused(ids).logits)


def test_save_pretrained_round_trip(fused, ids, tmp_path):
    fused.save_pretrained(tmp_path / "braid")
    files = sorted(p.name for p in (tmp_path / "braid").iterdir())
    assert files == ["braid_config.json", "fusion.safetensors"]  # member weights are referenced only
    loaded = BraidedLLM.from_pretrained(tmp_path / "braid")
    assert loaded.config == fused.config
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, fused(ids).logits)


def test_loading_into_a_different_braid_is_a_clear_error(fused, trio, tmp_path):
    fused.save_fusion_layers(tmp_path / "fusion.safetensors")
    other = BraidedLLM(model_configs=trio, fusion_strategy="router", fusion_layers=[0, 1], fusion_dim=32)
    with pytest.raises(ValueError, match="fusion_strategy: saved 'attention', this braid 'router'"):
        other.load_fusion_layers(tmp_path / "fusion.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception):  # noqa: B017 - safetensors' own header error
        other.load_fusion_layers(tmp_path / "junk.safetensors")
