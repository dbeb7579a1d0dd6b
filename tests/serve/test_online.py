"""The served meta-braider's online state: federated gateways (``OnlineMeta`` with a ``FederatedReplica``)."""

from __future__ import annotations

import copy

import pytest
import torch

from meta.federated import FederatedReplica, Merger, initial_state
from serve.config import ServeConfig
from serve.online import OnlineMeta
from tests.meta.feedback_world import HELD_OUT, stream, wrong_agent


def test_federated_gateways_take_each_others_ratings_and_keep_their_users_own():
    base = wrong_agent()
    merger = Merger(initial_state(base), staleness=4)
    a, b = (
        OnlineMeta(agent, replica=FederatedReplica(agent, merger, sync_every=8, refresh_s=1e-9))
        for agent in (copy.deepcopy(base), copy.deepcopy(base))
    )
    for t, d, s in stream(base, 8, seed=5):  # the eighth rating merges
        a.learn(t, d, s, baseline=None)
    assert a.updates == 8 and merger.pull()[1] == 1
    b.decide(HELD_OUT[0])  # a decision takes the merged state (refresh_s has passed)
    for name, value in a.agent.net.state_dict().items():
        assert torch.equal(value, b.agent.net.state_dict()[name])
    t, d, s = stream(base, 1, seed=6)[0]
    b.learn(t, d, s + 1.0, baseline=None, user="ann")  # a user's rating moves that user's correction only
    assert merger.pull()[1] == 1 and not b.replica.pending
    assert b.agent.personal.offsets("ann") is not None and a.agent.personal.offsets("ann") is None


def test_federation_needs_a_meta_braider_to_learn():
    with pytest.raises(ValueError, match="federated learning needs a meta_braider"):
        ServeConfig(braids={"x": "/tmp/x"}, default_model="x", federated={"sync_every": 4})
    with pytest.raises(ValueError, match="sync_every"):
        ServeConfig(meta_braider="/tmp/m.pt", federated={"sync_every": 0})


@pytest.mark.integration
def test_served_replicas_share_one_merger_actor_and_its_file(ray_local, tmp_path):
    from serve.config import FederationConfig

    base = wrong_agent()
    base.save(tmp_path / "meta.pt")
    config = FederationConfig(sync_every=4, merger="test-online-merger", refresh_s=1e-9)
    a = OnlineMeta.federated(tmp_path / "meta.pt", config, tmp_path)
    b = OnlineMeta.federated(tmp_path / "meta.pt", config, tmp_path)  # the second finds the first's actor
    for t, d, s in stream(base, 4, seed=7):
        a.learn(t, d, s, baseline=None)
    assert (tmp_path / "meta-braider.merged.pt").exists()
    b.decide(HELD_OUT[0])
    assert b.replica.base_version == 1
    for name, value in a.agent.net.state_dict().items():
        assert torch.equal(value, b.agent.net.state_dict()[name])
