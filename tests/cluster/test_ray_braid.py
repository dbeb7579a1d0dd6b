"""Ray placement on a local cluster: a plain BraidedLLM whose members are actors; parity with local
placement, recovery, cleanup, and the fusion actor."""

from __future__ import annotations

import time

import pytest
import torch

from braid import BraidedLLM
from tests.cluster.conftest import SMALL
from tests.conftest import PROSE, randomize_fusion

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def local_and_ray(paths, strategy, tmp_path, placement=SMALL):
    local = BraidedLLM(paths, fusion_strategy=strategy, fusion_layers=[0, 1], fusion_dim=16)
    randomize_fusion(local, seed=5)
    local.save_pretrained(tmp_path / strategy)
    remote = BraidedLLM(config=local.config, placement="ray", ray_placement=placement)
    remote.load_fusion_layers(tmp_path / strategy / "fusion.safetensors")
    return local, remote


def is_dead(ray, actor) -> bool:
    try:
        ray.get(actor.ping.remote(), timeout=30)
        return False
    except ray.exceptions.RayActorError:
        return True


@pytest.mark.parametrize("strategy", ["learned_weighted", "attention", "router", "calm+pointer"])
def test_ray_placement_matches_local(ray_local, trio, strategy, tmp_path):
    from cluster.braid import RayRunner

    local, remote = local_and_ray(trio, strategy, tmp_path)
    with remote:
        assert isinstance(remote, BraidedLLM) and isinstance(remote.runner, RayRunner)
        enc = local.anchor_model.encode(PROSE[:3])
        want = local(enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        got = remote(enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        assert torch.allclose(got, want, atol=1e-5)
        requests = ray_local.get([h.requests.remote() for h in remote.runner.member_handles()])
        text = remote.generate("models exchange hidden", max_new_tokens=24)
        assert text == local.generate("models exchange hidden", max_new_tokens=24)
        after = ray_local.get([h.requests.remote() for h in remote.runner.member_handles()])
        assert all(b > a for a, b in zip(requests, after, strict=True))  # the actors did the work
        assert len(set(remote.runner.member_nodes)) == 1  # PACK on one node


def test_killed_member_is_recreated_and_output_is_unchanged(ray_local, trio, tmp_path):
    local, remote = local_and_ray(trio, "attention", tmp_path)
    with remote:
        want = local.generate("the braid reads", max_new_tokens=64)
        victim = remote.runner.member_handles()[1]
        pieces = remote.generate("the braid reads", max_new_tokens=64, stream=True)
        got = "".join(next(pieces) for _ in range(4))
        ray_local.kill(victim)
        got += "".join(pieces)
        assert got == want
        assert remote.runner.recoveries == 1


def test_shutdown_leaves_no_actors_or_placement_groups(ray_local, trio, tmp_path):
    from ray.util import placement_group_table

    _, remote = local_and_ray(trio, "router", tmp_path)
    actors = remote.runner.member_handles()
    assert len(actors) == 3 and not any(is_dead(ray_local, a) for a in actors)
    pg_id = remote.runner.pg.id.hex()
    remote.close()
    assert all(is_dead(ray_local, a) for a in actors)
    assert placement_group_table()[pg_id]["state"] == "REMOVED"
    remote.close()  # twice is fine
    with pytest.raises(RuntimeError, match="was closed .* build a new one"):
        remote.generate("the braid", max_new_tokens=2)


def test_unplaceable_braid_fails_at_once_naming_what_is_missing(ray_local, trio):
    import time

    too_big = SMALL.model_copy(update={"cpus_per_member": 8.0})  # waiting would take ready_timeout_s (180 s)
    start = time.perf_counter()
    with pytest.raises(
        RuntimeError, match="cannot place the braid: 3 bundles .* need 24 CPU in all; the cluster has 2"
    ):
        BraidedLLM(trio, fusion_dim=16, placement="ray", ray_placement=too_big)
    assert time.perf_counter() - start < 10


def test_the_default_placement_fits_a_two_cpu_machine(ray_local, trio):
    """The README's Ray example with default settings once asked one CPU per bundle and waited 600 s."""
    from cluster import RayPlacement

    with BraidedLLM(
        trio, fusion_dim=16, fusion_layers=[0], placement="ray", ray_placement=RayPlacement()
    ) as remote:
        assert remote.runner.placement.cpus_per_member == 0.5  # 2 CPUs over 3 members and the owner
        assert isinstance(remote.generate("the braid", max_new_tokens=2), str)


def test_the_fusion_actor_holds_a_ray_braid_and_streams_its_text(ray_local, trio, tmp_path):
    """``FusionHost``: the fusion in an actor of its own (DESIGN's layout), members in theirs."""
    from cluster.actors import fusion_actor

    local, remote = local_and_ray(trio, "attention", tmp_path)
    remote.close()
    host = fusion_actor(local.config, SMALL, num_cpus=0.25)
    try:
        ray_local.get(host.load_fusion.remote((tmp_path / "attention" / "fusion.safetensors").read_bytes()))
        nodes = ray_local.get(host.nodes.remote())
        assert len(nodes["member_nodes"]) == 3
        enc = local.anchor_model.encode(PROSE[:2])
        got = ray_local.get(host.forward.remote(enc["input_ids"], enc["attention_mask"]))
        assert torch.allclose(
            got, local(enc["input_ids"], attention_mask=enc["attention_mask"]).logits, atol=1e-5
        )
        params = {"max_new_tokens": 16}
        pieces = [
            ray_local.get(r)
            for r in host.generate.options(num_returns="streaming").remote("the braid", params)
        ]
        assert len(pieces) > 1 and "".join(pieces) == local.generate("the braid", max_new_tokens=16)
    finally:
        ray_local.get(host.close.remote())
        ray_local.kill(host)


def test_a_braid_of_braids_on_ray_matches_local(ray_local, trio, cross_trio, tmp_path):
    """Hierarchical braiding (#25): an inner braid (one of its members with its own tokenizer) is one member
    actor running the inner fusion, its own members in actors of their own; the outer fusion reaches the
    inner anchor's blocks through two channels (outer braid -> inner braid's actor -> inner anchor's)."""
    inner = BraidedLLM(
        [trio[0], cross_trio[1]], fusion_strategy="router", fusion_layers=[0, 1], fusion_dim=16
    )
    randomize_fusion(inner, seed=2)
    inner.save_pretrained(tmp_path / "inner")
    local, remote = local_and_ray([trio[2], str(tmp_path / "inner")], "attention", tmp_path)
    with remote:
        enc = local.anchor_model.encode(PROSE[:2])
        want = local(enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        got = remote(enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        assert torch.allclose(got, want, atol=1e-5)
        assert remote.models[1].reads_stepwise  # its inner member re-tokenizes: one token per pass
        text = remote.generate("models exchange hidden", max_new_tokens=16)
        assert text == local.generate("models exchange hidden", max_new_tokens=16)
        host = remote.runner.member_handles()[1]
        inner_actors = ray_local.get(host.inner_members.remote())
        host_pid = ray_local.get(host.ready.remote())["pid"]
        pids = {a["pid"] for a in inner_actors} | {host_pid, *remote.runner.member_pids}
        assert len(inner_actors) == 2 and len(pids) == 4  # two outer members, two inner ones: four processes
    deadline = time.monotonic() + 60  # closing the outer braid frees the inner braid's actors and bundles
    while ray_local.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray_local.available_resources().get("CPU", 0) == 2
