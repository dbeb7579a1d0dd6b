"""Fusion-architecture search: the per-point space, its resolution to a braid, the grid it is measured
against, the compound tasks, and the search on a local Ray cluster under a compute budget."""

import math

import pytest
import torch

from tune.arch import ArchSearchConfig, ArchSpace, grid_choices, run_grid, run_search
from tune.compound import CompositionTask, MixtureTask
from tune.records import load_records, write_records
from tune.report import layer_map_plot
from tune.space import BraidChoice, PointArch
from tune.trainable import build_braid, run_trial

HIDDEN = ("learned_weighted", "attention", "router", "calm")


def test_resolve_orders_points_pairs_sources_and_defaults_members():
    space = ArchSpace(members=("a", "b", "c"))
    params = {
        "output": "pointer", "points": 3, "out_dim": 16, "lr": 2e-3,
        # sampled out of block order; point 1 lands on point 0's block (the first sampled stays)
        "p0_block": 3, "p0_strategy": "attention", "p0_dim": 8,
        "p0_b_layer": 1, "p0_b_on": True, "p0_c_layer": 2, "p0_c_on": False,
        "p1_block": 3, "p1_strategy": "router", "p1_dim": 32,
        "p1_b_layer": 0, "p1_b_on": True, "p1_c_layer": 0, "p1_c_on": True,
        "p2_block": 1, "p2_strategy": "calm", "p2_dim": 16,
        "p2_b_layer": 3, "p2_b_on": False, "p2_c_layer": 0, "p2_c_on": False,
    }  # fmt: skip
    c = space.resolve(params)
    assert c.fusion_layers == (1, 3) and c.fusion_points == 2
    # sources pair with points in depth order: a member runs forward once, in lockstep with the anchor
    assert c.layer_map == {"b": (1, 3), "c": (0, 2)}
    assert c.points == (
        PointArch(strategy="calm", fusion_dim=16, members=None),  # every flag off: every member
        PointArch(strategy="attention", fusion_dim=8, members=("a", "b")),
    )
    assert c.strategy == "calm+pointer" and c.fusion_dim == 16 and c.lr == 2e-3 and c.anchor == "a"
    only_output = space.resolve({"output": "output_router", "points": 0, "out_dim": 8, "lr": 1e-3})
    assert (
        only_output.fusion_layers == ()
        and only_output.points is None
        and only_output.strategy == "output_router"
    )


def test_space_and_choice_reject_what_cannot_be_built():
    with pytest.raises(ValueError, match="hidden-state strategies"):
        ArchSpace(members=("a", "b"), strategies=("pointer",))
    with pytest.raises(ValueError, match="outputs must be among"):
        ArchSpace(members=("a", "b"), outputs=("best",))
    with pytest.raises(ValueError, match="members repeat"):
        ArchSpace(members=("a", "a"))
    with pytest.raises(ValueError, match="allows no fusion"):
        ArchSpace(members=("a", "b"), strategies=(), outputs=("none",))
    base = dict(members=("a", "b"), anchor="a", strategy="router", fusion_points=1, placement="spread",
                fusion_dim=8, lr=1e-3, steps=4, temperature=0.0, fusion_layers=(1,))  # fmt: skip
    with pytest.raises(ValueError, match="one layer per point"):
        BraidChoice(**base, layer_map={"b": (0, 1)})
    with pytest.raises(ValueError, match="including the anchor"):
        BraidChoice(**base, points=(PointArch(members=("b",)),))


def test_grid_counts_distinct_braids_once():
    strategies = (*HIDDEN, "output_router", "pointer")
    two = grid_choices(("a", "b"), 2, strategies)  # early/spread/late of 1 and 2 points on 2 blocks: 3 sets
    assert len(two) == 4 * 3 + 2
    four = grid_choices(("a", "b"), 4, strategies)  # {0}, {3}, {0,1}, {1,3}, {2,3}
    assert len(four) == 4 * 5 + 2
    assert len({(c.strategy, c.fusion_layers) for c in four}) == len(four)


def test_sampled_architectures_build_and_train(zoo_and_pool):
    import optuna

    zoo, _ = zoo_and_pool
    members = ("prose-llama", "code-qwen2", "facts-mistral")  # facts-mistral reads another tokenizer
    space = ArchSpace(members=members, steps=2)
    task = MixtureTask(name="mix", domains=("prose", "code"), n_train=4, n_eval=2)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen_subset = False
    for _ in range(4):
        trial = study.ask()
        space.suggest(trial, {m: 2 for m in members})
        choice = space.resolve(trial.params)
        seen_subset |= any(p.members for p in choice.points or ())
        braided = build_braid(choice, zoo)
        assert [list(p.members or []) for p in braided.config.points or []] == [
            sorted(choice.ordered_members().index(m) for m in p.members) if p.members else []
            for p in choice.points or []
        ]
        reports = []
        run_trial({}, task, zoo, lambda m, _, out=reports: out.append(m), 2, to_choice=lambda _, c=choice: c)
        assert reports[-1]["steps_trained"] == 2 and math.isfinite(reports[-1]["score"])
    assert seen_subset


def test_mixture_task_splits_and_scores(zoo_and_pool):
    zoo, _ = zoo_and_pool
    with pytest.raises(ValueError, match="unknown domains"):
        MixtureTask(name="x", domains=("prose", "poetry"))
    task = MixtureTask(name="mix", domains=("prose", "code"), n_train=8, n_eval=3)
    val, test = task.split(0), task.split(1)
    assert all(len(val[d]) == len(test[d]) == 3 and not set(val[d]) & set(test[d]) for d in task.domains)
    assert len(task.train_items()) == 16 and task.info.domain == "prose+code"
    wider = task.model_copy(update={"n_test": 5}).split(1)
    assert all(wider[d][:3] == test[d] and len(wider[d]) == 5 for d in task.domains)
    with pytest.raises(ValueError, match="fewer than n_eval \\+ n_test = 200"):
        MixtureTask(name="x", domains=("prose", "code"), n_eval=100)
    braided = build_braid(grid_choices(("prose-llama", "code-qwen2"), 2, ("router",), steps=1)[0], zoo)
    scores = task.evaluate(braided)
    assert scores["score"] == pytest.approx(-math.log(scores["char_perplexity"]))
    assert {"char_perplexity_prose", "char_perplexity_code"} <= set(scores)


def test_composition_task_trains_on_values_and_tests_unseen_keys(tmp_path):
    from braid.zoo.composition import build_models, task

    torch.manual_seed(0)
    paths, _ = build_models(tmp_path, task(0), steps=8, seed=0)
    comp = CompositionTask(seed=0, tokenizer=paths["anchor"], n_train=8)
    keys = [{k for k, _, _ in comp.rows(r)} for r in (comp.train_keys, comp.val_keys, comp.test_keys)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    items = comp.train_items()
    assert len(items) == 8 and all(-100 in i["labels"] and set(i["labels"]) != {-100} for i in items)
    grid = grid_choices(("anchor", "letters", "digit"), 2, ("pointer",), steps=1)
    scores = comp.test(build_braid(grid[0], paths))
    assert scores["score"] == -scores["answer_nll"] and 0 <= scores["exact_match"] <= 1


@pytest.mark.integration
def test_search_stops_at_its_budget_and_writes_architecture_records(ray_local, zoo_and_pool, tmp_path):
    zoo, pool = zoo_and_pool
    members = ("prose-llama", "code-qwen2")
    task = MixtureTask(name="mix", domains=("prose", "code"), n_train=8, n_eval=2)
    cfg = ArchSearchConfig(name="t", eval_every=2, budget_steps=12, storage_path=str(tmp_path / "tune"))
    space = ArchSpace(members=members, strategies=("router", "learned_weighted"), fusion_dims=(8,), steps=6)
    records = run_search(task, space, zoo, pool, cfg)
    used = sum(r.steps_trained for r in records)
    # the stopper ends the experiment once reported steps reach the budget: at most a report per running
    # trial past it
    assert 12 <= used <= 12 + cfg.eval_every * cfg.max_concurrent_trials
    assert 2 <= len(records) < cfg.num_samples
    assert any(r.config.layer_map for r in records)
    path = write_records(records, tmp_path / "arch.jsonl")
    assert [r.config for r in load_records(path)] == [r.config for r in records]
    grid = grid_choices(members, 2, ("router", "pointer"), fusion_dims=(8,), steps=4)[:2]
    baseline = run_grid(task, grid, zoo, pool, cfg)
    assert sorted(r.config.strategy for r in baseline) == sorted(c.strategy for c in grid)
    assert all(r.steps_trained == 4 and not r.stopped_early for r in baseline)
    assert layer_map_plot(records[:2] + baseline[:1], tmp_path / "map.png").stat().st_size > 1000
