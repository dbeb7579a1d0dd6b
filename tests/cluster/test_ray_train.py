"""Fusion training on Ray Train with two workers (DDP over the fusion parameters only)."""

from __future__ import annotations

import pytest
import torch

from braid import BraidedLLM
from braid.train import TrainConfig
from cluster.train import PROBE_FILE, FusionLoss, train_fusion_on_ray
from tests.cluster.conftest import SMALL
from tests.conftest import PROSE


def test_fusion_loss_holds_only_fusion_parameters(trio):
    braided = BraidedLLM(trio[:2], fusion_strategy="router", fusion_dim=16)
    names = [n for n, _ in FusionLoss(braided).named_parameters()]
    assert names and all(n.startswith("fusion.") for n in names)
    assert len(names) == len(list(braided.fusion_modules.parameters()))


@pytest.mark.integration
@pytest.mark.slow
def test_ray_train_lowers_the_loss_and_its_checkpoint_loads(ray_local, trio, tmp_path):
    braided = BraidedLLM(trio[:2], fusion_strategy="attention", fusion_layers=[0, 1], fusion_dim=16)
    train = TrainConfig(max_steps=30, eval_every=15, learning_rate=3e-3, batch_size=4, progress=False)
    result = train_fusion_on_ray(
        braided.config, PROSE * 4, train, num_workers=2, cpus_per_worker=0.5, storage_path=str(tmp_path)
    )
    assert result.error is None
    assert result.metrics["eval_loss"] < result.metrics["initial_eval_loss"]
    with result.checkpoint.as_directory() as ckpt:
        probe = torch.load(f"{ckpt}/{PROBE_FILE}")
        local = BraidedLLM.from_pretrained(ckpt)
        # as the worker ran it: with grad on, attention's fused kernel may differ in the last bit
        with torch.no_grad():
            logits = local(probe["input_ids"], attention_mask=probe["attention_mask"]).logits
        assert torch.equal(logits, probe["logits"])  # the weights the workers trained, bit for bit
        with BraidedLLM.from_pretrained(ckpt, placement="ray", ray_placement=SMALL) as remote:
            got = remote(probe["input_ids"], attention_mask=probe["attention_mask"]).logits
            assert torch.allclose(got, probe["logits"], atol=1e-5)
