"""The leader/member exchange without Ray: member servers on threads, channels on 127.0.0.1."""

from __future__ import annotations

import pytest
import torch

from braid import BraidedLLM
from braid.config import BraidConfig
from braid.model_wrapper import ModelWrapper
from braid.runner import BraidUnavailable
from cluster.leader import MemberFailed, leader_braid
from cluster.member import MemberServer
from tests.conftest import PROSE, randomize_fusion

STRATEGIES = ["learned_weighted", "attention", "router"]


def serve(paths: list[str]) -> list[MemberServer]:
    return [MemberServer(ModelWrapper(p)).start() for p in paths]


def pair(paths: list[str], strategy: str, layers: list[int] | None = None, params: dict | None = None, **kw):
    config = BraidConfig(
        model_configs=paths, fusion_strategy=strategy, fusion_layers=layers, fusion_dim=16,
        strategy_params=params or {},
    )  # fmt: skip
    local = BraidedLLM(config=config)
    randomize_fusion(local, seed=3)
    servers = serve(paths)
    leader = leader_braid(
        config, [(s.host, s.port) for s in servers], [s.info() for s in servers], timeout=20, **kw
    )
    leader.fusion_modules.load_state_dict(local.fusion_modules.state_dict())
    return local, leader, servers


def batch(braided, texts):
    enc = braided.anchor_model.encode(texts)
    return enc["input_ids"], enc["attention_mask"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_leader_matches_local_logits_and_greedy_text(trio, strategy):
    local, leader, servers = pair(trio, strategy, layers=[0, 1])
    ids, mask = batch(local, PROSE[:3])
    want = local(ids, attention_mask=mask).logits
    got = leader(ids, attention_mask=mask).logits
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)
    prompt = "models exchange hidden"
    assert leader.generate(prompt, max_new_tokens=24) == local.generate(prompt, max_new_tokens=24)
    assert all(s.requests > 0 for s in servers)
    leader.close()


def test_cross_tokenizer_braid_matches(cross_trio):
    local, leader, _ = pair(cross_trio, "attention", layers=[0, 1])
    ids, mask = batch(local, PROSE[:2])
    assert torch.allclose(leader(ids, attention_mask=mask).logits, local(ids, attention_mask=mask).logits,
                          atol=1e-5)  # fmt: skip
    prompt = "a quick brown"
    assert leader.generate(prompt, max_new_tokens=20) == local.generate(prompt, max_new_tokens=20)


def test_lost_member_is_replaced_and_generation_replays(trio):
    """A member server dies mid-generation; the replacement serves the replay and the text is unchanged."""
    replaced: list[int] = []

    def replace(lost, deadline):
        (m,) = lost
        fresh = MemberServer(ModelWrapper(trio[m])).start()
        servers[m] = fresh
        replaced.append(m)
        return [(s.host, s.port) for s in servers]

    local, leader, servers = pair(trio, "attention", layers=[0, 1], replace_members=replace)
    want = local.generate("the braid reads", max_new_tokens=32)
    pieces = leader.generate("the braid reads", max_new_tokens=32, stream=True)
    got = next(pieces)
    servers[1].close()
    leader.runner.links[1].chan.close()  # what the OS does to a killed process's socket
    got += "".join(pieces)
    assert got == want and replaced == [1] and leader.runner.recoveries == 1


def test_unrecoverable_member_raises_not_hangs(trio):
    def replace(lost, deadline):
        raise RuntimeError("no capacity left for the member")

    _, leader, servers = pair(trio, "router", replace_members=replace, recovery_timeout=2)
    for s in servers:
        s.close()
    for link in leader.runner.links:
        link.chan.close()
    with pytest.raises(BraidUnavailable, match="could not be replaced: no capacity"):
        leader.generate("the braid", max_new_tokens=4)


def test_member_error_is_reported_and_the_braid_stays_usable(trio):
    local, leader, _ = pair(trio, "learned_weighted")
    bad = torch.full((1, 3), 10_000)  # beyond every member's vocabulary
    with pytest.raises(MemberFailed, match="member 0: IndexError"):
        leader(bad)
    ids, mask = batch(local, PROSE[:1])
    assert torch.allclose(leader(ids, attention_mask=mask).logits, local(ids, attention_mask=mask).logits,
                          atol=1e-5)  # fmt: skip


def test_sampled_generation_matches_with_the_same_signature(trio):
    local, leader, _ = pair(trio, "attention", layers=[0, 1])
    args = ("a quick brown", 16, 0.8)  # positional, as BraidedLLM.generate takes them
    assert leader.generate(*args, top_k=20, seed=3) == local.generate(*args, top_k=20, seed=3)
    leader.close()


def received(leader) -> int:
    """Bytes the leader received from the members other than the anchor."""
    return sum(link.chan.received for link in leader.runner.links if link.index != leader.config.anchor)


@pytest.mark.parametrize(
    ("strategy", "layers", "params"),
    [("output_router", [], {}), ("pointer", [], {"top_k": 8}), ("attention+pointer", [0, 1], {})],
)
def test_output_level_strategies_match_over_the_channel(trio, strategy, layers, params):
    params = {"pointer": params} if "+" in strategy else params
    local, leader, _ = pair(trio, strategy, layers=layers, params=params)
    ids, mask = batch(local, PROSE[:3])
    want = local(ids, attention_mask=mask).logits.softmax(-1)
    assert torch.allclose(leader(ids, attention_mask=mask).logits.softmax(-1), want, atol=1e-5)
    prompt = "models exchange hidden"
    assert leader.generate(prompt, max_new_tokens=16) == local.generate(prompt, max_new_tokens=16)
    leader.close()


def test_top_k_sends_a_fraction_of_the_bytes(trio):
    """Members sharing the anchor's tokenizer send their full logits, or only the top-k entries (k ids and k
    probabilities per position instead of a vocabulary-sized row: 8 + 8 of 300 here)."""
    counts = {}
    for top_k in (None, 8):
        _, leader, _ = pair(trio, "output_router", layers=[], params={"top_k": top_k})
        ids, mask = batch(leader, PROSE[:2])
        before = received(leader)
        leader(ids, attention_mask=mask)
        counts[top_k] = received(leader) - before
        leader.close()
    assert counts[8] < counts[None] / 8, counts


def test_cross_tokenizer_output_fusion_runs_the_bridge_in_the_member(cross_trio):
    light = {"bridge": {"candidates": 24, "expand": 4, "depth": 2}}
    local, leader, servers = pair(cross_trio, "output_router", layers=[], params=light)
    ids, mask = batch(local, PROSE[:2])
    want = local(ids, attention_mask=mask).logits.softmax(-1)
    assert torch.allclose(leader(ids, attention_mask=mask).logits.softmax(-1), want, atol=1e-5)
    prompt = "a quick brown"
    assert leader.generate(prompt, max_new_tokens=12) == local.generate(prompt, max_new_tokens=12)
    assert all(s.bridge is not None for s in servers[1:]) and servers[0].bridge is None
    leader.close()
