"""The gateway serves what the meta-braider decides when that is a searched architecture (``tune.arch``):
the decision's key names the architecture, and the braid built from that key alone is the architecture, with
the search trial's fusion weights."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from braid import BraidedLLM
from braid.checkpoint import fusion_path
from meta import MetaBraider
from meta.learn import observations_from_records
from meta.net import DecisionSpace
from serve.braids import BraidFactory
from serve.coordinator import Coordinator
from tests.meta.test_agent import POOL
from tests.meta.test_architectures import record
from tune.space import BraidChoice, PointArch

SPACE = DecisionSpace(strategies=("router",), fusion_points=(1,), placements=("early",), fusion_dims=(16,),
                      steps=(20,), max_members=2)  # fmt: skip
CODE = {"type": "code_completion", "complexity": 0.6, "description": "finish python code"}


def searched(anchor: str, other: str) -> BraidChoice:
    """Code and prose braided at the anchor's block 0, the other member read at its block 1, width 8."""
    return BraidChoice(
        members=("code", "prose"), anchor=anchor, strategy="router", fusion_points=1, placement="early",
        fusion_dim=16, lr=3e-3, steps=20, temperature=0.0, fusion_layers=(0,), layer_map={other: (1,)},
        points=(PointArch(strategy="router", fusion_dim=8),),
    )  # fmt: skip


@pytest.fixture
def trained(trio, tmp_path):
    """The agent over code and prose, its library holding a searched architecture per anchor, and the search
    trials' records, each with a checkpoint of non-zero fusion weights."""
    paths = {"code": trio[1], "prose": trio[0]}
    agent = MetaBraider([m for m in POOL if m["name"] in paths], space=SPACE, paths=paths, dim=16)
    records = []
    for anchor, other in (("code", "prose"), ("prose", "code")):
        choice = searched(anchor, other)
        braided = BraidedLLM(config=choice.to_config(paths))
        with torch.no_grad():
            for p in braided.fusion_modules.parameters():
                p.add_(0.5)
        checkpoint = tmp_path / anchor
        checkpoint.mkdir()
        braided.save_fusion_layers(fusion_path(checkpoint))
        records.append(
            record(choice, -1.0, f"trial-{anchor}").model_copy(update={"checkpoint": str(checkpoint)})
        )
    assert len(observations_from_records(agent, records)) == 2
    return agent, paths, records


def test_auto_serves_the_searched_architecture_with_its_trials_weights(trained):
    agent, paths, records = trained
    coordinator = Coordinator(meta_braider=agent)
    key, decision, _, _ = coordinator.decide("def add(a, b):", "auto", CODE, {})
    assert decision.architecture is not None and key == decision.served_key()
    assert key.startswith(decision.key() + "@")  # the grid key, then the architecture's digest

    factory = BraidFactory(
        paths, records=records, grid=agent.candidates.keys(), architectures=agent.architectures
    )
    factory.check(key)
    braided, info = factory.build(key)
    assert info == {"source": "searched architecture", "trained_by_trial": f"trial-{decision.anchor}"}
    assert braided.config.layer_map == {1: [1]} and braided.config.points[0].fusion_dim == 8
    plain = BraidFactory(paths).build(decision.key())[0]  # the grid key alone: proportional source layers
    assert list(plain.config.fusion_layers) == [0] and plain.config.layer_map is None
    weights = load_file(
        fusion_path(next(r.checkpoint for r in records if r.config.anchor == decision.anchor))
    )
    state = braided.fusion_modules.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items())

    # the coordinator's own braids build it too (the agent's library travels with the coordinator)
    assert coordinator.braids.info(key)["source"] == "searched architecture"


def test_an_unknown_architecture_digest_is_refused_before_building(trained):
    agent, paths, records = trained
    factory = BraidFactory(
        paths, records=records, grid=agent.candidates.keys(), architectures=agent.architectures
    )
    grid_key = next(iter(agent.candidates.keys()))
    with pytest.raises(ValueError, match="names no searched architecture"):
        factory.check(grid_key + "@000000000000")
    assert BraidFactory(paths, grid=agent.candidates.keys()).searched(grid_key + "@000000000000") is None
