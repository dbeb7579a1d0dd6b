"""The ceilings of bench/meta.py: an agent told a task's measured scores and decode ms answers every
satisfiable seed-form request correctly, so the violations the bench reports come from what it predicts."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch

from bench.meta_constraints import constraint_checks, summary, told
from meta import MetaBraider
from tests.meta.test_agent import POOL, TASK


@pytest.fixture(scope="module")
def agent_and_truth():
    return untrained_agent_and_random_truth()


def untrained_agent_and_random_truth() -> tuple[MetaBraider, SimpleNamespace]:
    """An untrained agent (its own predictions are noise) and one task's random scores and decode ms for 16
    of its candidates, shaped like bench/meta.py's ``Truth``."""
    torch.manual_seed(0)
    agent = MetaBraider(POOL, dim=16)  # untrained: its own predictions are noise
    draw = random.Random(1)
    configs = sorted(draw.sample(range(len(agent.candidates)), 16))
    truth = SimpleNamespace(
        configs=configs,
        tasks={"t": TASK},
        score={"t": {c: draw.uniform(-6.0, -1.0) for c in configs}},
        ms={"t": {c: draw.uniform(2.0, 20.0) for c in configs}},
    )
    return agent, truth


def seed_form(outcomes: list[tuple[str, str]]) -> list[str]:
    return [o for kind, o in outcomes if kind != "min_score"]


def test_an_agent_told_scores_and_ms_meets_every_satisfiable_request_and_refuses_none(agent_and_truth):
    agent, truth = agent_and_truth
    own = seed_form(constraint_checks(agent, truth, "t", random.Random(0), 60))
    with told(agent, truth, "t", "both"):
        knowing = seed_form(constraint_checks(agent, truth, "t", random.Random(0), 60))
    assert len(knowing) == len(own) > 20  # the same satisfiable draws
    assert set(knowing) == {"met"}
    assert set(own) != {"met"}  # the untrained agent's own predictions miss or refuse some


def test_told_restores_the_agent_and_names_what_it_can_tell(agent_and_truth):
    agent, truth = agent_and_truth
    before, calibration = agent.scores(TASK)[0].clone(), agent.calibration
    with told(agent, truth, "t", "ms"):
        pred = agent.scores(TASK)[0]
        c = truth.configs[0]
        assert pred[c, 1].exp().item() == pytest.approx(truth.ms["t"][c], rel=1e-5)
        assert pred[c, 0].item() == pytest.approx(before[c, 0].item())  # the scores stay the agent's
    assert torch.equal(agent.scores(TASK)[0], before) and agent.calibration is calibration
    with pytest.raises(ValueError, match="score"), told(agent, truth, "t", "latency"):
        pass


def test_summary_reports_each_ceiling_on_the_seed_form_requests_only():
    ceiling = {
        "score": [("none", "met"), ("accuracy_target", "violated"), ("min_score", "refused")],
        "ms": [("none", "refused"), ("accuracy_target", "met")],
        "both": [("none", "met"), ("accuracy_target", "met")],
    }
    text = summary(ceiling)
    assert "told its scores: met 1/2 = 50.0%, refused 0/2 = 0.0%" in text
    assert "told its decode ms: met 1/1 = 100.0%, refused 1/2 = 50.0%" in text
    assert "told both: met 2/2 = 100.0%" in text
