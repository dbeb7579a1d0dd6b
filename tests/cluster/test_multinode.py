"""A braid whose members are spread over simulated nodes (ray.cluster_utils.Cluster) with STRICT_SPREAD."""

from __future__ import annotations

import pytest
import torch

from braid import BraidedLLM
from tests.cluster.conftest import SMALL
from tests.conftest import PROSE, randomize_fusion

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024**2}


@pytest.fixture(scope="module")
def three_nodes():
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args=NODE)
    for _ in range(2):
        cluster.add_node(**NODE)
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_strict_spread_puts_members_on_different_nodes_and_keeps_parity(three_nodes, trio, tmp_path):
    paths = trio[:2]
    local = BraidedLLM(paths, fusion_strategy="attention", fusion_layers=[0, 1], fusion_dim=16)
    randomize_fusion(local, seed=7)
    placement = SMALL.model_copy(update={"strategy": "STRICT_SPREAD"})
    with BraidedLLM(config=local.config, placement="ray", ray_placement=placement) as remote:
        local.save_pretrained(tmp_path)
        remote.load_fusion_layers(tmp_path / "fusion.safetensors")
        assert len(set(remote.runner.member_nodes)) == 2  # each member on a node of its own
        enc = local.anchor_model.encode(PROSE[:2])
        want = local(enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        assert torch.allclose(remote(enc["input_ids"], attention_mask=enc["attention_mask"]).logits, want,
                              atol=1e-5)  # fmt: skip
        assert remote.generate("the anchor", max_new_tokens=16) == local.generate(
            "the anchor", max_new_tokens=16
        )
