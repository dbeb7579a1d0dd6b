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
        assert e.metrics["steps_trained"] == 10 and e.performance == e.metrics["score"]
        assert set(e.decision.members) <= set(paths)
    with pytest.raises(ValueError, match="no checkpoint path for pool models"):
        MetaBraiderTrainer(MetaBraider(pool, space), tasks)
