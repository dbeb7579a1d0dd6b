"""Measuring before answering (``meta.probe``): on a type the agent never measured, the probe times and
scores candidates on the request's task, decides on what it measured, and keeps it for later requests."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
import torch

from bench.meta_constraints import constraint_checks
from meta import MetaBraider
from meta.probe import Measured, Probe, settled
from tests.bench.test_meta_constraints import untrained_agent_and_random_truth
from tests.meta.test_agent import TASK


@pytest.fixture()
def agent_and_truth():
    return untrained_agent_and_random_truth()


def probe_of(agent, truth, **settings) -> Probe:
    return Probe(agent, lambda _, i: truth.score["t"][i], lambda _, i: truth.ms["t"][i], **settings)


def outcomes(checks) -> list[str]:
    return [o for kind, o in checks if kind != "min_score"]


def test_measured_values_replace_predictions_and_move_the_rest_by_the_mean_error():
    pred = torch.tensor([[-1.0, 0.0, 0.0], [-2.0, 1.0, 0.0], [-3.0, 2.0, 0.0]])  # (C, 3)
    got = Measured(score={0: -2.0, 1: -2.0}, ms={2: 5.0}).applied(pred)
    assert got[0, 0] == -2.0 and got[1, 0] == -2.0
    assert got[2, 0].item() == pytest.approx(-3.5)  # errors -1 and 0: the rest moves by their mean
    assert got[2, 1].item() == pytest.approx(torch.tensor(5.0).log().item()) and got[0, 1] == 0.0
    assert torch.equal(pred[:, 0], torch.tensor([-1.0, -2.0, -3.0]))  # the agent's own stay as they were


def test_a_probe_that_trusts_no_prediction_meets_every_satisfiable_request(agent_and_truth):
    agent, truth = agent_and_truth
    own = outcomes(constraint_checks(agent, truth, "t", random.Random(0), 60))
    probe = probe_of(agent, truth, k=len(truth.configs), timed=len(truth.configs), doubt=math.inf)
    probed = outcomes(constraint_checks(agent, truth, "t", random.Random(0), 60, decider=probe))
    assert len(probed) == len(own) > 20 and set(own) != {"met"}  # the agent alone misses or refuses some
    assert set(probed) == {"met"}
    assert probe.spent.trials <= len(truth.configs) and probe.spent.timings <= len(truth.configs)


def test_measuring_stops_once_no_unmeasured_candidate_could_change_the_answer():
    # a 0.9 target lets a rival beat the best measured by ln(1/0.9) = 0.105 nats
    assert settled(best=-2.0, rival=-1.95, target=0.9, floor=None)
    assert not settled(best=-2.0, rival=-1.85, target=0.9, floor=None)
    assert settled(best=-2.0, rival=-1.0, target=None, floor=-2.5)  # a measured score meets the floor
    assert settled(best=-3.0, rival=-2.8, target=None, floor=-2.5)  # nothing left could: refuse
    assert not settled(best=-3.0, rival=-2.0, target=None, floor=-2.5)
    assert not settled(best=-2.0, rival=-1.0, target=0.9, floor=-2.5)  # both must hold


def test_a_probe_measures_at_most_k_scores_per_request_and_keeps_them(agent_and_truth):
    agent, truth = agent_and_truth
    probe = probe_of(agent, truth, k=2, timed=5, doubt=math.inf)  # doubting all: k bounds the trials
    limits = {"compute_budget": 1.0, "latency_requirement": 25.0, "accuracy_target": 0.9}
    first = probe.decide_among(TASK, truth.configs, **limits)
    assert (probe.spent.trials, probe.spent.timings) == (2, 5)
    kept = probe.kept[next(iter(probe.kept))]
    assert agent.candidates.index_of(first) in kept.score  # the best measured of the two is the answer
    again = probe.decide_among(TASK, truth.configs, **limits)  # the next request adds, never repeats
    kept = probe.kept[next(iter(probe.kept))]
    assert (probe.spent.trials, probe.spent.timings, len(kept.score)) == (4, 5, 4)
    assert agent.candidates.index_of(again) in kept.score
    probe.decide_among(TASK, truth.configs, compute_budget=1.0)  # no score limit: no trial
    assert (probe.spent.trials, probe.spent.timings) == (4, 5)  # nor a timing without a latency limit


def test_a_type_the_agent_measured_is_decided_without_measuring(agent_and_truth):
    agent, truth = agent_and_truth
    agent.calibration = replace(agent.calibration, seen_types=(TASK["type"], "arithmetic"))
    probe = probe_of(agent, truth)
    limits = {"compute_budget": 0.5, "accuracy_target": 0.5}
    assert probe.decide_among(TASK, truth.configs, **limits) == agent.decide_among(
        TASK, truth.configs, **limits
    )
    assert (probe.spent.trials, probe.spent.timings) == (0, 0)
    with pytest.raises(ValueError, match="k and timed"):
        Probe(agent, len, len, k=0)


@pytest.mark.slow
def test_trial_measures_train_and_time_a_real_braid(tiny_zoo):
    from braid.zoo.build import load_cards
    from meta import DecisionSpace
    from meta.probe import trial_measures
    from tune.records import ModelFeatures
    from tune.tasks import TaskSpec

    cache, paths = tiny_zoo
    pool = [ModelFeatures.from_card(c) for c in load_cards(tiny=True, cache_dir=cache)]
    agent = MetaBraider(pool, DecisionSpace(steps=(4,), fusion_dims=(8,), fusion_points=(1,)), dim=16)
    spec = TaskSpec(name="facts-qa", type="fact_recall", n_train=4, n_eval=2)
    score_of, ms_of = trial_measures(agent, spec, paths)
    i = next(
        i for i in range(len(agent.candidates)) if len(agent.candidates.decision(i, 0.5, 0.0).members) == 2
    )
    score, ms = score_of(spec.info, i), ms_of(spec.info, i)
    assert score < 0 and ms > 0  # a log-likelihood per character, a decode time
    probe = Probe(agent, score_of, ms_of, k=1, timed=2)
    decision = probe.decide_among(spec.info, [i, i + 1], accuracy_target=0.8)
    assert agent.candidates.index_of(decision) in probe.kept[next(iter(probe.kept))].score
