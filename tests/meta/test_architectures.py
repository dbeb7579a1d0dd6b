"""Searched architectures as the meta-braider learns them: records become observations of the grid
configuration they refine, and a decision of that configuration for that task type builds the searched one."""

from __future__ import annotations

import pytest

from meta import MetaBraider
from meta.architectures import grid_projection
from meta.learn import observations_from_records
from tests.meta.test_agent import POOL
from tune.records import Cost, ModelFeatures, SweepRecord
from tune.space import BraidChoice, PointArch
from tune.tasks import TaskInfo

GRID = dict(members=("code", "prose"), anchor="code", strategy="router", fusion_points=1, placement="early",
            fusion_dim=16, lr=3e-3, steps=20, temperature=0.0, fusion_layers=(0,))  # fmt: skip


def searched(source: int, width: int) -> BraidChoice:
    return BraidChoice(
        **GRID, layer_map={"prose": (source,)}, points=(PointArch(strategy="router", fusion_dim=width),)
    )


def record(config: BraidChoice, score: float, trial: str) -> SweepRecord:
    task = TaskInfo(name="code-lm", type="code_completion", domain="code", metric="char_perplexity",
                    complexity=3, description="finish python code")  # fmt: skip
    return SweepRecord(
        sweep="arch", trial_id=trial, task=task, pool=tuple(ModelFeatures(**m) for m in POOL), config=config,
        metrics={"score": score, "char_perplexity": 1.0}, cost=Cost(trained_params=10, decode_ms=1.0, memory_mb=1.0),
        iterations=1, steps_trained=20, stopped_early=False,
    )  # fmt: skip


def test_grid_projection_keeps_the_family_and_takes_the_nearest_placement():
    base = {**GRID, "strategy": "attention+pointer"}
    two = BraidChoice(**{**base, "fusion_points": 2, "fusion_layers": (0, 2)}, layer_map={"prose": (0, 1)})
    p = grid_projection(two, anchor_depth=4)  # early [0, 1] is 1 block away, spread [1, 3] 2, late [2, 3] 3
    assert (p.placement, p.fusion_points, p.strategy, p.fusion_dim) == ("early", 2, "attention+pointer", 16)
    exact = BraidChoice(**{**base, "fusion_points": 2, "fusion_layers": (1, 3)}, layer_map={"prose": (0, 2)})
    assert grid_projection(exact, anchor_depth=4).placement == "spread"


def test_searched_records_teach_their_grid_choice_and_refine_its_braid(trio, tmp_path):
    agent = MetaBraider(POOL, dim=16)
    plain = record(BraidChoice(**GRID), -2.0, "grid")
    best, worse = record(searched(2, 8), -1.0, "s1"), record(searched(0, 32), -1.5, "s2")
    obs = observations_from_records(agent, [plain, best, worse])
    assert len(obs) == 3 and {o.decision.structure().key() for o in obs} == {
        "code|code,prose|router|1|early|16"
    }
    assert len(agent.architectures) == 1  # one grid choice, one task type: the best searched refinement

    index = agent.candidates.index_of(obs[0].decision)
    code = {"type": "code_completion", "complexity": 0.6, "description": "finish python code"}
    decision = agent.decide_among(code, [index])
    assert decision.architecture == best.config
    config = decision.to_braid_config({"code": trio[0], "prose": trio[1]})
    assert config.fusion_layers == [0] and config.layer_map == {1: [2]} and config.points[0].fusion_dim == 8
    facts = agent.decide_among({"type": "fact_recall", "complexity": 0.4, "description": "recall"}, [index])
    assert facts.architecture is None  # measured on code only
    assert facts.to_braid_config({"code": trio[0], "prose": trio[1]}).layer_map is None

    agent.save(tmp_path / "agent.pt")
    again = MetaBraider.load(tmp_path / "agent.pt")
    assert again.decide_among(code, [index]).architecture == best.config


def test_a_choice_builds_its_searched_architecture(trio):
    with pytest.raises(ValueError, match="no path for members"):
        searched(1, 8).to_config({"code": trio[0]})
    config = searched(1, 8).to_config({"code": trio[0], "prose": trio[1]})
    assert config.model_configs[0].model_name == trio[0] and config.points[0].strategy == "router"
