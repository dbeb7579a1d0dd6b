"""Decision net shapes and masking, decisions under constraints, explanations, save/load."""

from __future__ import annotations

import json
import math

import pytest
import torch

from braid.fusion import split_strategy
from meta import BraidingDecision, DecisionNet, DecisionSpace, Infeasible, MetaBraider, MetaTask
from meta.features import MODEL_DIM, TASK_DIM
from meta.policy import policy_log_prob

POOL = [
    {"name": n, "family": f, "domain": d, "tokenizer": "bpe", "vocab_size": 300, "hidden": h, "layers": 2,
     "parameters": p, "train_steps": 100}
    for n, f, d, h, p in [("prose", "llama", "prose", 32, 40_000), ("code", "qwen2", "code", 48, 90_000),
                          ("facts", "mistral", "facts", 32, 50_000), ("big", "llama", "general", 64, 400_000)]
]  # fmt: skip
TASK = {"type": "code_completion", "complexity": 0.6, "capabilities": ["code"], "description": "finish code"}


def test_decision_net_shapes_and_padding_mask():
    space = DecisionSpace()
    net = DecisionNet(space, dim=32)
    task, models = torch.randn(2, TASK_DIM), torch.randn(2, 5, MODEL_DIM)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    out = net(task, models, mask)
    assert out.include.shape == out.anchor.shape == (2, 5)
    assert out.strategy.shape == (2, len(space.strategies)) and out.continuous.shape == (2, 2)
    assert (out.anchor[1].softmax(-1)[3:] == 0).all()  # padded models get no probability
    models2 = models.clone()
    models2[1, 3:] = torch.randn(2, MODEL_DIM) * 100  # what sits in padding must not matter
    out2 = net(task, models2, mask)
    assert torch.allclose(out.strategy[1], out2.strategy[1], atol=1e-5)
    members, anchor = torch.zeros(2, 7, 5), torch.zeros(2, 7, 5)
    members[..., :2], anchor[..., 0] = 1, 1
    assert net.score(out, members, anchor, torch.randn(2, 7, space.candidate_dim)).shape == (2, 7, 3)


def test_decision_converts_to_a_braid_config(trio):
    agent = MetaBraider(POOL[:3], paths={"prose": trio[0], "code": trio[1], "facts": trio[2]})
    decision = agent(TASK)
    assert isinstance(decision, BraidingDecision) and decision.anchor in decision.members
    config = decision.to_braid_config(agent.paths)
    assert config.model_configs[0].model_name == agent.paths[decision.anchor]
    # an output-level strategy alone has no fusion points, whatever the decision's point count says
    points = decision.fusion_points if split_strategy(decision.strategy)[0] else 0
    assert config.fusion_strategy == decision.strategy and len(config.fusion_layers) == points
    braided = agent.create_braided_model(decision)
    assert braided.config == config


def test_constraints_are_never_violated_when_feasible():
    agent = MetaBraider(POOL)
    torch.manual_seed(0)
    for budget in (0.2, 0.3, 0.5, 1.0):
        decision = agent(TASK, compute_budget=budget)
        share = sum(m["parameters"] for m in POOL if m["name"] in decision.members) / sum(
            m["parameters"] for m in POOL
        )
        assert share <= budget + 1e-9
    free = agent(TASK)
    limit = free.predicted_decode_ms * 0.999999  # exclude exactly the unconstrained choice's latency
    tight = agent(TASK, latency_requirement=limit)
    assert tight.predicted_decode_ms <= limit


def test_infeasible_request_names_the_closest_option():
    agent = MetaBraider(POOL)
    with pytest.raises(
        Infeasible, match="infeasible: no candidate meets compute_budget=0.01; closest option"
    ) as e:
        agent(TASK, compute_budget=0.01)
    assert set(e.value.closest.members) == {"prose", "facts"}  # the two smallest models


def test_explanation_names_the_actual_choices_with_their_probabilities():
    agent = MetaBraider(POOL)
    decision, text = agent.forward_with_explanation(TASK)
    out = agent.encode(TASK)
    p_strategy = out.strategy[0].softmax(-1)[agent.space.strategies.index(decision.strategy)]
    assert f"strategy {decision.strategy}: policy confidence {p_strategy:.2f}" in text
    assert f"anchor {decision.anchor}" in text and "no constraint bound" in text
    bound_decision, bound_text = agent.forward_with_explanation(TASK, compute_budget=0.25)
    if set(bound_decision.members) != set(decision.members):
        assert "bound by compute_budget" in bound_text
    assert torch.isfinite(policy_log_prob(out, agent, decision))


def test_save_load_round_trip_and_a_new_model_in_the_pool(tmp_path):
    agent = MetaBraider(POOL[:3])
    measured = agent.candidates.decision(5, 0.5, 0.0)
    agent.calibrated(agent.calibration.with_costs({5: [1.25, 1.25 * math.exp(-0.2)]}))  # measured twice
    agent.save(tmp_path / "meta.pt")
    again = MetaBraider.load(tmp_path / "meta.pt")
    assert again(TASK) == agent(TASK) and again.trained_pool == ["prose", "code", "facts"]
    assert json.dumps(again.calibration.to_dict()) == json.dumps(agent.calibration.to_dict())  # NaN-safe
    assert float(again.calibration.measured_ms[5]) == pytest.approx(1.25)
    grown = MetaBraider.load(tmp_path / "meta.pt", model_pool=POOL)  # an unseen model, no retraining
    assert "big" in grown.names and isinstance(grown(TASK), BraidingDecision)
    j = grown.candidates.index_of(measured)
    cal = grown.calibration
    assert float(cal.measured_ms[j]) == pytest.approx(1.25) and float(
        cal.measured_spread[j]
    ) == pytest.approx(0.2)
    assert int((~cal.measured_ms.isnan()).sum()) == 1
    with pytest.raises(ValueError, match="not a meta-braider checkpoint"):
        torch.save({"format": "x"}, tmp_path / "bad.pt")
        MetaBraider.load(tmp_path / "bad.pt")


def test_model_tokens_carry_the_tasks_affinity_to_each_domain():
    from meta.features import affinity

    arith = MetaTask(type="arithmetic", capabilities=("arithmetic",), description="add two numbers")
    prose = MetaTask(type="story_writing", capabilities=("fluency",), description="write a short story")
    models = {m["name"]: m for m in POOL}
    assert affinity(arith, {"domain": "arithmetic"})[1] == 1.0 and affinity(arith, models["prose"])[1] == 0.0
    assert affinity(prose, models["prose"])[0] > affinity(prose, models["code"])[0]  # by the text embedding
    agent = MetaBraider(POOL)
    a, b = agent.encode(arith).model_states, agent.encode(prose).model_states
    assert not torch.allclose(a, b)  # the same pool reads differently for different tasks


def test_an_agent_saved_with_calibration_buffers_still_loads(tmp_path):
    """Agents saved before ``meta.calibration`` kept their margins in buffers of their state dict."""
    agent = MetaBraider(POOL[:3])
    agent.calibrated(agent.calibration.with_costs({7: [2.0, 3.0]}))
    agent.save(tmp_path / "new.pt")
    blob = torch.load(tmp_path / "new.pt", weights_only=False)
    cal = blob.pop("calibration")
    blob["state"] |= {
        "measured_ms": torch.tensor(cal["measured_ms"]), "measured_spread": torch.tensor(cal["measured_spread"]),
        "measured_margin": torch.tensor(cal["measured_margin"]), "latency_margin": torch.tensor(0.5),
        "score_margin": torch.tensor([0.1, 0.3]),
    }  # fmt: skip
    blob["seen_types"] = ["code_completion"]
    torch.save(blob, tmp_path / "old.pt")
    old = MetaBraider.load(tmp_path / "old.pt").calibration
    assert float(old.measured_ms[7]) == 3.0 and old.latency_margin == 0.5
    assert old.score_margin == pytest.approx((0.1, 0.3)) and old.seen_types == ("code_completion",)
