"""On a CUDA device (skipped without one): the braid on the GPU matches the CPU braid, and ray placement
gives each member actor a GPU while keeping parity with the local braid."""

from __future__ import annotations

import pytest
import torch

from braid import BraidedLLM
from cluster import RayPlacement
from tests.conftest import PROSE, randomize_fusion

pytestmark = [pytest.mark.gpu]


def on_device(paths, device: str, dtype: str | None = None) -> BraidedLLM:
    specs = [{"model_name": p, "device": device, "dtype": dtype} for p in paths]
    return BraidedLLM(specs, fusion_strategy="attention", fusion_layers=[0, 1], fusion_dim=16)


def test_braid_on_cuda_matches_cpu(trio):
    cpu, gpu = on_device(trio, "cpu"), on_device(trio, "cuda")
    randomize_fusion(cpu, seed=5)
    gpu.fusion_modules.load_state_dict(cpu.fusion_modules.state_dict())
    assert {m.device.type for m in gpu.models} == {"cuda"}
    enc = cpu.anchor_model.encode(PROSE[:3])
    want = cpu(enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    got = gpu(enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    assert got.device.type == "cuda"
    assert torch.allclose(got.cpu(), want, atol=1e-4)


def test_bf16_members_generate_on_cuda(trio):
    braided = on_device(trio, "cuda", "bfloat16")
    assert {next(m.model.parameters()).dtype for m in braided.models} == {torch.bfloat16}
    text = braided.generate("the braid reads", max_new_tokens=12)
    assert isinstance(text, str) and text


@pytest.mark.integration
def test_ray_members_get_a_gpu_and_match_local(trio, tmp_path):
    import ray

    ray.init(num_cpus=4, num_gpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        local = on_device(trio, "cuda")
        randomize_fusion(local, seed=5)
        local.save_pretrained(tmp_path / "braid")
        specs = [s.model_copy(update={"device": None}) for s in local.config.model_configs]
        placement = RayPlacement(cpus_per_member=0.5, gpus_per_member=0.25)
        with BraidedLLM(
            config=local.config.model_copy(update={"model_configs": specs}),
            placement="ray",
            ray_placement=placement,
        ) as remote:
            remote.load_fusion_layers(tmp_path / "braid" / "fusion.safetensors")
            devices = ray.get([h.__ray_call__.remote(lambda self: str(self.server.member.device))
                               for h in remote.runner.member_handles()])  # fmt: skip
            assert all(d.startswith("cuda") for d in devices)
            enc = local.anchor_model.encode(PROSE[:3])
            want = local(enc["input_ids"], attention_mask=enc["attention_mask"]).logits.cpu()
            got = remote(enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            assert torch.allclose(got.cpu(), want, atol=1e-4)
            assert remote.generate("the braid reads", max_new_tokens=16) == local.generate(
                "the braid reads", max_new_tokens=16
            )
    finally:
        ray.shutdown()
