"""The meta-braider takes what the seed passes: its pool dicts and model objects, ``task=``, one-argument
feedback, a 0..1 accuracy target, per-user feedback, and the monitoring helpers."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from meta import Constraints, Infeasible, MetaBraider, create_braided_model
from meta.learn import Observation, pretrain
from meta.monitor import analyze_decision_patterns, log_decision, suggest_improvements
from tests.meta.test_agent import POOL, TASK


@pytest.fixture(scope="module")
def zoo_pool(tiny_zoo):
    """The seed's pool shape over the tiny zoo: only model_name (a local checkpoint) and domain."""
    _, paths = tiny_zoo
    return [{"model_name": paths[n], "domain": d} for n, d in
            [("prose-llama", "general"), ("code-qwen2", "code"), ("facts-mistral", "medical")]]  # fmt: skip


def test_the_seeds_pool_dicts_read_their_sizes_from_the_checkpoint(zoo_pool, tiny_zoo):
    agent = MetaBraider(zoo_pool)
    assert agent.names == ["prose-llama", "code-qwen2", "facts-mistral"]
    by_name = {m["name"]: m for m in agent.pool}
    assert by_name["code-qwen2"]["parameters"] > 0 and by_name["code-qwen2"]["layers"] >= 2
    assert by_name["facts-mistral"]["domain"] == "medical"  # the entry's own keys win over the card
    assert agent.paths == {n: tiny_zoo[1][n] for n in agent.names}


def test_seed_keys_and_model_objects_describe_a_model(tiny_zoo):
    from braid import ModelWrapper

    _, paths = tiny_zoo
    sized = {"model_name": "llama-3.1-8B", "size": 8e9, "num_layers": 32, "hidden_dim": 4096, "vocab_size": 128256,
             "domain": "general", "quantization": "8bit", "recency": 0.9}  # fmt: skip
    wrapper = ModelWrapper(paths["code-qwen2"])
    agent = MetaBraider([sized, wrapper])
    assert agent.names == ["llama-3.1-8B", "code-qwen2"]
    assert agent.pool[0]["parameters"] == 8e9 and agent.pool[0]["layers"] == 32
    assert agent.pool[1]["parameters"] == wrapper.num_parameters and agent.pool[1]["domain"] == "code"
    assert agent.paths == {"llama-3.1-8B": "llama-3.1-8B", "code-qwen2": paths["code-qwen2"]}
    with pytest.raises(ValueError, match=r"pool model 'nowhere-7b': parameters, layers, hidden, vocab_size"):
        MetaBraider([{"model_name": "nowhere-7b", "domain": "code"}, sized])
    with pytest.raises(TypeError, match="a pool entry is a dict"):
        MetaBraider([sized, 42])


def test_task_and_task_info_name_the_same_argument():
    agent = MetaBraider(POOL)
    assert agent(task=TASK) == agent(task_info=TASK) == agent(TASK) == agent.forward(task=TASK)
    _, text = agent.forward_with_explanation(task_info=TASK)
    assert "Selected" in text
    with pytest.raises(TypeError, match="give the task once"):
        agent(TASK, task=TASK)


def test_create_braided_model_is_a_function_of_the_decision(zoo_pool):
    agent = MetaBraider(zoo_pool)
    decision = agent(task={"type": "code", "complexity": 0.8})
    with create_braided_model(decision) as braided:
        assert sorted(m.model_name for m in braided.models) == sorted(
            agent.paths[n] for n in decision.members
        )
        assert isinstance(braided.generate("def add(a, b):", max_new_tokens=4), str)
    copy = type(decision).model_validate_json(decision.model_dump_json())  # a decision from elsewhere
    with pytest.raises(ValueError, match="no checkpoint path"):
        create_braided_model(copy)


def test_explanations_never_report_a_choice_without_its_reason():
    """The demo printed 'strategy router: policy confidence 0.00' beside a router decision: a chosen option
    the policy did not favour now says which it preferred and why the choice stood."""
    torch.manual_seed(3)
    agent = MetaBraider(POOL)
    _, text = agent.forward_with_explanation(TASK)
    with torch.no_grad():
        out = agent.encode(TASK)
    for line in text.splitlines()[1:]:
        if "policy confidence" not in line or line.startswith("- member"):
            continue
        label = line[2:].split(":")[0]
        head = {"anchor": out.anchor, "strategy": out.strategy, "fusion": out.points,
                "placement": out.placement}.get(label.split()[0])  # fmt: skip
        if (
            head is not None
            and float(line.split("policy confidence ")[1][:4]) < float(head[0].softmax(-1).max()) - 0.01
        ):
            assert "the policy preferred" in line and "the scorer predicts" in line, line


def _pretrained_agent() -> tuple[MetaBraider, list[Observation]]:
    from tests.meta.test_learn import CODE, synthetic_observations

    torch.manual_seed(0)
    agent = MetaBraider(POOL, dim=32)
    obs = synthetic_observations(agent, 300)
    pretrain(agent, obs, steps=100)
    return agent, [o for o in obs if o.task is CODE]


def test_users_feedback_moves_only_their_own_decisions():
    from tests.meta.test_learn import CODE

    agent, _ = _pretrained_agent()
    shared = agent(CODE)
    liked = next(agent.candidates.decision(i, 0.5, 0.0) for i in range(len(agent.candidates))
                 if agent.candidates.decision(i, 0.5, 0.0).anchor == "facts")  # fmt: skip
    for _ in range(3):
        agent.learn_from_feedback(CODE, liked, 1.0, user="ana")  # ana loves a facts-anchored braid
        agent.learn_from_feedback(CODE, shared, 0.05, user="ana")  # and dislikes the shared choice
        agent.learn_from_feedback(CODE, shared, 1.0, user="bo")  # bo loves the shared choice
        agent.learn_from_feedback(CODE, liked, 0.05, user="bo")
    ana, bo = agent(CODE, user="ana"), agent(CODE, user="bo")
    assert ana != bo and ana.anchor == "facts" and bo.anchor != "facts"
    assert agent(CODE) == shared and agent(CODE, user="cy") == shared  # nobody else moved
    assert not agent.online_learner().buffer  # the shared agent learned nothing from them


def test_one_argument_feedback_adapts_to_a_new_task_type():
    """The seed's few-shot loop: three examples of a new type, each a decision and how it went."""
    agent, _ = _pretrained_agent()
    legal = {"type": "legal_review", "complexity": 0.8, "description": "review contracts"}
    rng = random.Random(0)
    good = [agent.candidates.decision(i, 0.5, 0.0) for i in range(len(agent.candidates))]
    good = [d for d in good if d.anchor == "big"]
    for _ in range(3):
        agent.learn_from_feedback({"info": legal, "decision": rng.choice(good), "performance": 0.95})
        bad = agent(legal)
        if bad.anchor != "big":
            agent.learn_from_feedback({"task_info": legal, "decision": bad, "rating": 1})
    assert agent(legal).anchor == "big"
    assert "legal_review" not in agent.calibration.best_score  # feedback is not a measured best
    with pytest.raises(ValueError, match="needs the decision it rates"):
        agent.learn_from_feedback({"info": legal, "performance": 0.5})


def test_one_argument_feedback_runs_an_example_with_an_expected_output(zoo_pool):
    agent = MetaBraider(zoo_pool)
    agent.learn_from_feedback(
        {"info": {"type": "code"}, "data": "def add(a, b):", "expected_output": " return a + b"}
    )
    assert len(agent.online_learner().buffer) == 1
    assert 0.0 <= agent.quality({"type": "code"}, agent.online_learner().buffer[0].score) <= 1.0


def test_an_accuracy_target_is_quality_not_a_raw_score():
    agent, _ = _pretrained_agent()
    from tests.meta.test_learn import CODE

    best = agent.calibration.best_score["code_completion"]
    for target in (0.5, 0.7):
        d = agent(CODE, accuracy_target=target)
        assert agent.quality(CODE, d.predicted_score) >= target
    assert agent.raw_score(CODE, 0.9) == pytest.approx(
        best + math.log(0.9)
    )  # within 10% of the best measured
    unseen = {"type": "legal_review", "description": "review contracts"}  # no measured best: relative
    d = agent(unseen, accuracy_target=0.9)
    assert d.predicted_score >= float(agent.scores(unseen)[0][:, 0].max()) + math.log(0.9)
    assert Constraints(accuracy_target=0.9).accuracy_target == 0.9
    with pytest.raises(Infeasible, match="min_score=5.0"):
        agent(CODE, min_score=5.0)
    with pytest.raises(ValueError, match="accuracy_target"):
        agent(CODE, accuracy_target=-4.0)  # the raw scale is min_score's
    with pytest.raises(ValueError, match="pass a raw score as score="):
        agent.learn_from_feedback(CODE, d, -2.3)
    agent.learn_from_feedback(CODE, d, score=-2.3)  # the raw form


def test_decisions_are_logged_analysed_and_turned_into_suggestions(tmp_path):
    from tests.meta.test_learn import CODE, FACTS

    agent, _ = _pretrained_agent()
    log = tmp_path / "decisions.jsonl"
    for task, perf in [(CODE, 0.9), (CODE, 0.8), (FACTS, 0.2), (FACTS, 0.3)]:
        d, why = agent.forward_with_explanation(task)
        log_decision(task, d, perf, explanation=why, path=log)
    log_decision(FACTS, None, constraints={"latency_requirement": 0.01}, path=log)
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    assert (
        len(rows) == 5
        and rows[0]["explanation"].startswith("Selected")
        and rows[0]["pool"] == sorted(agent.names)
    )
    p = analyze_decision_patterns(log, show=False)
    assert (
        p.by_type["code_completion"]["success_rate"] == 1.0
        and p.by_type["fact_recall"]["success_rate"] == 0.0
    )
    assert p.by_type["fact_recall"]["refused"] == 1 and log.with_suffix(".png").stat().st_size > 1000
    tips = suggest_improvements(log, show=False)
    assert any(t.startswith("task type fact_recall scores 0.25") for t in tips)
    unused = set(agent.names) - set(p.models)
    assert all(any(t.startswith(f"model {m} is in 0%") for t in tips) for m in unused)
    assert any("latency_requirement" in t for t in tips)
    with pytest.raises(ValueError, match="performance is 0..1"):
        log_decision(CODE, d, 4, path=log)
