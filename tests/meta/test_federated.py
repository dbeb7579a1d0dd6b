"""Federated meta-learning: the merger's rules, and replicas on different nodes that learn from disjoint
feedback and merge (ray.cluster_utils)."""

from __future__ import annotations

import copy

import pytest
import torch

from meta.federated import FederatedReplica, Merger, RayMerger, initial_state
from tests.meta.feedback_world import HELD_OUT, KINDS, quality, stream, top_choices, wrong_agent


def small_state(x: float) -> dict[str, torch.Tensor]:
    return {"w": torch.full((2, 2), x), "b": torch.zeros(3)}


def test_merger_adds_deltas_refuses_stale_bases_and_reloads_after_a_restart(tmp_path):
    path = tmp_path / "merged.pt"
    merger = Merger(small_state(1.0), path, staleness=1)
    assert merger.push(small_state(0.5), base_version=0) == 1
    assert merger.push(small_state(0.25), base_version=0) == 2  # one merge old: within the bound
    assert merger.push(small_state(9.0), base_version=0) is None  # two merges old: refused, not applied
    with pytest.raises(ValueError, match="newer"):
        merger.push(small_state(1.0), base_version=5)
    with pytest.raises(ValueError, match="keys"):
        merger.push({"w": torch.zeros(2, 2)}, base_version=2)
    again = Merger(small_state(0.0), path, staleness=1)  # a restart: the file wins over the initial state
    state, version = again.pull()
    assert version == 2 and torch.allclose(state["w"], torch.full((2, 2), 1.75))
    with pytest.raises(ValueError, match="initial state"):
        Merger(None, tmp_path / "none.pt")


def test_a_stale_push_is_replayed_on_the_merged_state_and_no_feedback_is_lost():
    base = wrong_agent()
    merger = Merger(initial_state(base), staleness=0)  # any concurrent merge makes a base stale
    a, b = (FederatedReplica(copy.deepcopy(base), merger, sync_every=1000) for _ in range(2))
    feedback = stream(base, 40, seed=3)
    for t, d, s in feedback[:20]:
        a.learn(t, d, s)
    for t, d, s in feedback[20:]:
        b.learn(t, d, s)
    assert a.sync() == 1
    assert b.sync() == 2 and not b.pending  # refused at version 0, replayed on version 1, merged
    a.pull()
    for name, value in a.agent.net.state_dict().items():
        assert torch.equal(value, b.agent.net.state_dict()[name])
    assert any(not torch.equal(v, initial_state(base)[k]) for k, v in merger.pull()[0].items())


NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024**2}


@pytest.fixture(scope="module")
def three_nodes():
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "resources": {"node0": 1}})
    for i in (1, 2):
        cluster.add_node(**NODE, resources={f"node{i}": 1})
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


class ReplicaHost:
    """A gateway replica's meta-braider: loads the agent, then starts from the merged state."""

    def __init__(self, agent_path: str, merger: str, sync_every: int):
        from meta import MetaBraider

        torch.set_num_threads(1)
        agent = MetaBraider.load(agent_path)
        agent.online_learner(lr=1e-3)
        self.replica = FederatedReplica(agent, RayMerger.connect(merger), sync_every)

    def learn(self, feedback: list) -> int:
        for t, d, s in feedback:
            self.replica.learn(t, d, s)
        return self.replica.sync() if self.replica.pending else self.replica.base_version

    def pull(self) -> int:
        return self.replica.pull()

    def top(self) -> list[int]:
        return top_choices(self.replica.agent)

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


@pytest.mark.integration
@pytest.mark.slow
def test_replicas_on_three_nodes_with_disjoint_feedback_reach_the_decisions_of_one_that_saw_all(
    three_nodes, tmp_path
):
    import ray

    base = wrong_agent()
    base.save(tmp_path / "agent.pt")
    feedback = stream(base, 450, seed=1)
    one = copy.deepcopy(base)  # the replica that sees everything, in this process
    one.online_learner(lr=1e-3)
    for t, d, s in feedback:
        one.learn_from_feedback(t, d, score=s)
    want = top_choices(one)
    assert quality(one) > quality(base) + 0.5  # the feedback changes what a replica decides
    alone = copy.deepcopy(base)  # the control: a replica that never merges knows its own type only
    for t, d, s in (f for f in feedback if f[0].type == KINDS[0]):
        alone.learn_from_feedback(t, d, score=s)
    assert sum(g == w for g, w in zip(top_choices(alone), want, strict=True)) <= 0.7 * len(HELD_OUT)
    merger = RayMerger.start("meta-merger", initial_state(base), tmp_path / "merged.pt", staleness=4)
    host = ray.remote(max_restarts=1, max_task_retries=-1)(ReplicaHost)
    replicas = [
        host.options(num_cpus=1, resources={f"node{i}": 1}).remote(str(tmp_path / "agent.pt"), "meta-merger", 8)
        for i in range(3)
    ]  # fmt: skip
    assert len(set(ray.get([r.node.remote() for r in replicas]))) == 3
    # each replica sees one task type only: disjoint feedback, learnt concurrently
    ray.get(
        [
            r.learn.remote([f for f in feedback if f[0].type == k])
            for r, k in zip(replicas, KINDS, strict=True)
        ]
    )
    ray.get([r.pull.remote() for r in replicas])
    for got in ray.get([r.top.remote() for r in replicas]):
        same = sum(g == w for g, w in zip(got, want, strict=True))
        assert same >= 0.95 * len(HELD_OUT), f"{same}/{len(HELD_OUT)} top choices match one replica's"
    merged_version = merger.pull()[1]
    ray.kill(replicas[0], no_restart=False)  # a replica restarts and starts from every merged update
    assert ray.get(replicas[0].top.remote()) == ray.get(replicas[1].top.remote())
    ray.kill(merger.handle, no_restart=False)  # the merger restarts from its file
    assert ray.get(replicas[0].pull.remote()) == merged_version
    assert ray.get(replicas[0].top.remote()) == ray.get(replicas[2].top.remote())
