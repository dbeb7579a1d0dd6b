"""Multi-agent braiding: proposers with different objectives, an arbiter that checks every proposal with
every proposer."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import pytest
import torch

from meta import Infeasible, MetaBraider
from meta.arbiter import Arbiter, objective
from meta.calibration import Calibration
from meta.learn import pretrain
from tests.meta.test_agent import POOL
from tests.meta.test_learn import CODE, FACTS, synthetic_observations, true_score

TOTAL = sum(m["parameters"] for m in POOL)


def ms_of(d) -> float:
    return 1.0 + sum(m["parameters"] for m in POOL if m["name"] in d.members) / 1e5


@pytest.fixture(scope="module")
def proposers() -> list[MetaBraider]:
    agents = []
    for seed in range(3):
        torch.manual_seed(seed)
        agent = MetaBraider(POOL, dim=32)
        pretrain(agent, synthetic_observations(agent, 400, seed=seed), steps=150, lr=3e-3, transfer=False)
        agents.append(agent)
    return agents


def test_an_unknown_objective_names_the_valid_ones(proposers):
    with pytest.raises(KeyError, match="valid: \\['cost', 'latency', 'quality'\\]"):
        Arbiter([(proposers[0], "speed")])
    with pytest.raises(ValueError, match="at least one"):
        Arbiter([])


def test_objectives_propose_different_braids_and_the_arbiter_keeps_the_constraints(proposers):
    arbiter = Arbiter(list(zip(proposers, ("quality", "latency", "cost"), strict=True)))
    for task in (CODE, FACTS):
        d = arbiter(task)
        assert true_score(task, d) >= 0.8  # the ensemble's choice: the right anchor and strategy
        assert len(arbiter.last["proposals"]) >= 2  # latency- and cost-first want smaller braids
        utilities = [objective(n).utility(a.scores(task)[0], a.compute_share) for a, n in
                     zip(proposers, ("quality", "latency", "cost"), strict=True)]  # fmt: skip
        assert arbiter.last["proposals"][0] == int(utilities[0].argmax())
    for limit in (2.3, 3.0, 5.0):
        d = arbiter(FACTS, latency_requirement=limit)
        assert ms_of(d) <= limit  # measured cost, every proposer's view
    for budget in (0.16, 0.3):
        d = arbiter(CODE, compute_budget=budget)
        assert sum(m["parameters"] for m in POOL if m["name"] in d.members) / TOTAL <= budget
    with pytest.raises(Infeasible):
        arbiter(CODE, latency_requirement=0.5)


def test_a_proposer_that_overrates_scores_is_outvoted(proposers):
    """One agent predicts every braid far better than it is: alone it promises a score floor nothing meets;
    with an honest proposer beside it the arbiter refuses."""
    liar = copy.deepcopy(proposers[0])
    with torch.no_grad():
        liar.net.scorer[-1].bias[0] += 5.0  # every predicted score up by 5
    floor = 1.5  # above every true score (at most 0.9)
    d = liar(FACTS, min_score=floor)
    assert true_score(FACTS, d) < floor  # alone, the overrating agent answers and misses
    with pytest.raises(Infeasible, match="every proposer's view"):
        Arbiter([(liar, "quality"), (proposers[1], "latency")])(FACTS, min_score=floor)


def test_a_latency_limit_met_only_on_expected_cost_is_answered_by_the_closest(proposers):
    """One braid is measured at 0.5 ms with a 1.35x spread, everything else at 10 ms: no candidate surely
    meets 0.6 ms, this one does on its expected cost, so the arbiter answers with it (as a single agent
    would); 0.45 ms nothing meets even so."""
    agents = [copy.deepcopy(a) for a in proposers[:2]]
    i = 7
    costs = {j: [10.0] for j in range(len(agents[0].candidates)) if j != i}
    table = Calibration.empty(len(agents[0].candidates)).with_costs({**costs, i: [0.5 / math.exp(0.3), 0.5]})
    for a in agents:
        a.calibrated(replace(a.calibration, measured_ms=table.measured_ms,
                             measured_spread=table.measured_spread, measured_margin=table.measured_margin))  # fmt: skip
    arbiter = Arbiter([(agents[0], "quality"), (agents[1], "latency")])
    assert agents[0].candidates.index_of(arbiter(FACTS, latency_requirement=0.6)) == i
    with pytest.raises(Infeasible):
        arbiter(FACTS, latency_requirement=0.45)
