"""The seed's episode loop against real braids of the tiny zoo."""

from __future__ import annotations

import pytest

from meta import DecisionSpace, MetaBraider
from meta.trainer import MetaBraiderTrainer


@pytest.mark.slow
def test_episodes_train_real_braids_and_feed_back(tiny_zoo):
    from braid.zoo.build import load_cards
    from tune.records import ModelFeatures

    cache, paths = tiny_zoo
    pool = [ModelFeatures.from_card(c) for c in load_cards(tiny=True, cache_dir=cache)]
    space = DecisionSpace(steps=(10,), fusion_dims=(8,), fusion_points=(1,))
    agent = MetaBraider(pool, space, paths=paths, dim=32)
    tasks = [{"name": "prose-lm", "type": "language_modeling", "n_train": 8, "n_eval": 4},
             {"name": "arith-qa", "type": "arithmetic", "n_train": 8, "n_eval": 4}]  # fmt: skip
    trainer = MetaBraiderTrainer(agent, tasks, seed=0)
    episodes = trainer.train(3, progress=False)
    assert len(episodes) == 3 and len(trainer.feedback.buffer) == 3
    for e in episodes:
        assert e.metrics["steps_trained"] == 10 and 0.0 <= e.performance <= 1.0
        assert set(e.decision.members) <= set(paths)
    assert [o.score for o in trainer.feedback.buffer] == [e.metrics["score"] for e in episodes]  # learned raw
    with pytest.raises(ValueError, match="no checkpoint path for pool models"):
        MetaBraiderTrainer(MetaBraider(pool, space), tasks)


@pytest.mark.slow
def test_the_seeds_tasks_are_scored_0_to_1_and_a_curriculum_goes_easy_to_hard(tiny_zoo):
    """The seed's training tasks (info, data, expected_output): the braid generates, the output is scored."""
    from meta.trainer import curriculum_stages

    _, paths = tiny_zoo
    pool = [{"model_name": paths[n]} for n in ("prose-llama", "code-qwen2")]
    space = DecisionSpace(steps=(10,), fusion_dims=(8,), fusion_points=(1,))
    agent = MetaBraider(pool, space, dim=32)
    tasks = [
        {
            "info": {"type": "code", "complexity": 0.7},
            "data": "def add(a, b):",
            "expected_output": " return a + b",
        },
        {"info": {"type": "qa"}, "data": "The", "expected_output": " the", "metric": lambda out, exp: 1.0},
        {"info": {"type": "qa"}, "data": "2 + 2 =", "expected_output": "zzzz", "metric": "exact"},
    ]
    trainer = MetaBraiderTrainer(agent, tasks, curriculum=True, max_new_tokens=4)
    episodes = trainer.train(6, progress=False)
    assert all(0.0 <= e.performance <= 1.0 for e in episodes) and len(trainer.feedback.buffer) == 6
    assert trainer.difficulty[1] == 0.0 and trainer.difficulty[2] == 1.0  # always right / never right
    assert [e.task for e in episodes[:2]] == [trainer.tasks[1].name] * 2  # the easiest first
    assert curriculum_stages([2, 0, 1], 6) == [2, 2, 0, 2, 1, 2]  # every task by the last stage
    with pytest.raises(ValueError, match="expected_output"):
        MetaBraiderTrainer(agent, [{"info": {"type": "qa"}, "data": "x"}])
