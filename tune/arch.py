"""Fusion-architecture search: per fusion point, the anchor block, each member's source layer, the strategy,
the width and which members take part, plus the output head; searched by Optuna's TPE through Ray Tune
(define-by-run, so a point's parameters exist only when the point does), with ASHA stopping most trials
early and a compute budget (fusion training steps) ending the search.

The grid it is measured against (``grid_choices``) is the sweep's space for a fixed member set: one
strategy, evenly placed points, one width for every point; ``run_grid`` trains each of its configurations
to the full budget. Both write sweep records (``tune.records``), so the meta-braider learns from the
searched architectures as from any trial.

    space = ArchSpace(members=("prose-llama", "facts-mistral"))
    records = run_search(task, space, zoo, pool, ArchSearchConfig(budget_steps=2000))
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from braid.paths import cache_dir
from tune.records import ModelFeatures, SweepRecord
from tune.space import BraidChoice, PointArch

NO_OUTPUT = "none"
PLACEMENTS = ("early", "spread", "late")


class ArchSpace(BaseModel):
    """What the search varies, for a fixed member set (``members[0]`` is the anchor)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    members: tuple[str, ...] = Field(min_length=2)
    max_points: int = Field(2, ge=1, description="hidden fusion points, at most")
    strategies: tuple[str, ...] = ("learned_weighted", "attention", "router", "calm")
    outputs: tuple[str, ...] = (NO_OUTPUT, "output_router", "pointer")
    fusion_dims: tuple[int, ...] = (8, 16, 32)
    choose_members: bool = Field(True, description="each point samples which non-anchor members take part")
    lr: tuple[float, float] = (1e-3, 1e-2)
    steps: int = Field(200, ge=1, description="a trial's full training budget (ASHA stops most earlier)")

    @field_validator("strategies")
    @classmethod
    def _hidden(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from braid.fusion import strategy_names

        valid = strategy_names(output=False)
        if bad := [s for s in v if s not in valid]:
            raise ValueError(f"point strategies must be hidden-state strategies {valid}, got {bad}")
        return v

    @field_validator("outputs")
    @classmethod
    def _output(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from braid.fusion import strategy_names

        valid = [NO_OUTPUT, *strategy_names(hidden=False)]
        if bad := [s for s in v if s not in valid]:
            raise ValueError(f"outputs must be among {valid}, got {bad}")
        return v

    @model_validator(mode="after")
    def _sane(self) -> ArchSpace:
        if len(set(self.members)) != len(self.members):
            raise ValueError(f"members repeat: {list(self.members)}")
        if not 0 < self.lr[0] <= self.lr[1]:
            raise ValueError(f"lr range must satisfy 0 < low <= high, got {self.lr}")
        if not self.strategies and set(self.outputs) <= {NO_OUTPUT}:
            raise ValueError("the space allows no fusion: name a point strategy or an output strategy")
        return self

    @property
    def anchor(self) -> str:
        return self.members[0]

    @property
    def others(self) -> tuple[str, ...]:
        return self.members[1:]

    def suggest(self, trial: Any, depths: dict[str, int]) -> None:
        """Optuna define-by-run: sample one architecture's parameters on ``trial``."""
        output = trial.suggest_categorical("output", list(self.outputs))
        if not self.strategies:
            n = 0
        elif output == NO_OUTPUT:  # a braid needs some fusion; a separate name keeps each range fixed
            n = trial.suggest_int("points_hidden_only", 1, self.max_points)
        else:
            n = trial.suggest_int("points", 0, self.max_points)
        for i in range(n):
            trial.suggest_int(f"p{i}_block", 0, depths[self.anchor] - 1)
            trial.suggest_categorical(f"p{i}_strategy", list(self.strategies))
            trial.suggest_categorical(f"p{i}_dim", list(self.fusion_dims))
            for m in self.others:
                trial.suggest_int(f"p{i}_{m}_layer", 0, depths[m] - 1)
                if self.choose_members and len(self.others) > 1:
                    trial.suggest_categorical(f"p{i}_{m}_on", [True, False])
        if output != NO_OUTPUT:
            trial.suggest_categorical("out_dim", list(self.fusion_dims))
        trial.suggest_float("lr", *self.lr, log=True)

    def resolve(self, params: dict[str, Any]) -> BraidChoice:
        """The braid sampled ``params`` describe. Points go in anchor-block order (two on one block: the
        first sampled stays); each member's source layers are paired with them in depth order, since every
        member runs forward once, in lockstep with the anchor; a point whose member flags are all off takes
        every member."""
        output = params["output"]
        n = params.get("points", params.get("points_hidden_only", 0))
        points: dict[int, tuple[PointArch, dict[str, int]]] = {}
        for i in range(n):
            on = [m for m in self.others if params.get(f"p{i}_{m}_on", True)]
            who = None if len(on) in (0, len(self.others)) else (self.anchor, *on)
            arch = PointArch(strategy=params[f"p{i}_strategy"], fusion_dim=params[f"p{i}_dim"], members=who)
            points.setdefault(
                params[f"p{i}_block"], (arch, {m: params[f"p{i}_{m}_layer"] for m in self.others})
            )
        blocks = sorted(points)
        archs = [points[b][0] for b in blocks]
        layer_map = {m: tuple(sorted(points[b][1][m] for b in blocks)) for m in self.others}
        hidden = archs[0].strategy if archs else None
        strategy = "+".join(s for s in (hidden, None if output == NO_OUTPUT else output) if s)
        return BraidChoice(
            members=self.members, anchor=self.anchor, strategy=strategy, fusion_points=max(1, len(blocks)),
            placement="spread", fusion_dim=params["out_dim"] if output != NO_OUTPUT else archs[0].fusion_dim,
            lr=params["lr"], steps=self.steps, temperature=0.0, fusion_layers=tuple(blocks),
            layer_map=layer_map if blocks else None, points=tuple(archs) if blocks else None,
        )  # fmt: skip


def grid_choices(
    members: tuple[str, ...],
    anchor_depth: int,
    strategies: tuple[str, ...],
    fusion_points: tuple[int, ...] = (1, 2),
    fusion_dims: tuple[int, ...] = (32,),
    lr: float = 3e-3,
    steps: int = 200,
) -> list[BraidChoice]:
    """The sweep grid for a fixed member set (``members[0]`` the anchor): every strategy x fusion points x
    placement x width, as distinct braids (placements landing on the same blocks count once)."""
    from braid.spec import strategy_layers

    seen, out = set(), []
    for strategy, n, placement, dim in itertools.product(strategies, fusion_points, PLACEMENTS, fusion_dims):
        layers = tuple(strategy_layers(strategy, anchor_depth, n, placement))
        if (strategy, layers, dim) not in seen:
            seen.add((strategy, layers, dim))
            choice = BraidChoice(
                members=members, anchor=members[0], strategy=strategy, fusion_points=n, placement=placement,
                fusion_dim=dim, lr=lr, steps=steps, temperature=0.0, fusion_layers=layers,
            )  # fmt: skip
            out.append(choice)
    return out


class ArchSearchConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field("arch", pattern=r"^[A-Za-z0-9_.-]+$")
    num_samples: int = Field(
        64, ge=1, description="trials at most (the budget usually ends the search first)"
    )
    budget_steps: int | None = Field(None, ge=1, description="fusion training steps over all trials")
    eval_every: int = Field(25, ge=1, description="training steps per report (one ASHA time unit)")
    grace_period: int = Field(1, ge=1)
    reduction_factor: int = Field(3, ge=2)
    max_concurrent_trials: int = Field(2, ge=1)
    seed: int = 0
    verbose: int = Field(0, ge=0, le=3)
    storage_path: str = Field(default_factory=lambda: str(cache_dir() / "arch-search"))


def arch_trainable(
    config: dict[str, Any], *, task: Any, zoo: dict[str, str], eval_every: int, seed: int, space: Any
) -> None:
    """Tune function trainable: a searched architecture (``space`` given) or a grid choice (``config["choice"]``,
    JSON) trained and reported as a sweep trial."""
    import torch
    from ray import tune

    from tune.trainable import run_trial

    torch.set_num_threads(1)
    to_choice = space.resolve if space is not None else grid_choice

    def report(metrics: dict[str, Any], ckpt_dir: Path) -> None:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(ckpt_dir)))

    # Tune reuses a trial's actor for the next trial: members (and a bridged member's memoised readings of
    # the task's texts) load once per actor, not once per trial
    run_trial(config, task, zoo, report, eval_every, None, seed, shared_members=True, to_choice=to_choice)


def grid_choice(config: dict[str, Any]) -> BraidChoice:
    """A grid trial's braid: ``run_grid`` puts each choice's JSON in its config."""
    return BraidChoice.model_validate_json(config["choice"])


def compute_budget(steps: int):
    """A Tune stopper ending the whole experiment once the trials' reported training steps reach ``steps``."""
    from ray import tune

    class ComputeBudget(tune.Stopper):
        def __init__(self) -> None:
            self.used: dict[str, int] = {}

        def __call__(self, trial_id: str, result: dict) -> bool:
            self.used[trial_id] = int(result.get("steps_trained", 0))
            return False

        def stop_all(self) -> bool:
            return sum(self.used.values()) >= steps

    return ComputeBudget()


def run_search(
    task: Any, space: ArchSpace, zoo: dict[str, str], pool: list[ModelFeatures], cfg: ArchSearchConfig
) -> list[SweepRecord]:
    """TPE over ``space`` with ASHA, until ``cfg.budget_steps`` (or ``num_samples`` trials)."""
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from braid.config import probe_architecture

    depths = {m: probe_architecture(zoo[m]).num_layers for m in space.members}
    # a partial of a method, not a lambda: Tune pickles the searcher (and its space) with the experiment
    suggest = functools.partial(space.suggest, depths=depths)
    search = OptunaSearch(space=suggest, metric="score", mode="max", seed=cfg.seed)
    asha = ASHAScheduler(
        time_attr="training_iteration", metric="score", mode="max", max_t=-(-space.steps // cfg.eval_every),
        grace_period=cfg.grace_period, reduction_factor=cfg.reduction_factor,
    )  # fmt: skip
    stop = compute_budget(cfg.budget_steps) if cfg.budget_steps else None
    tune_config = _tune_config(cfg, search_alg=search, scheduler=asha, num_samples=cfg.num_samples)
    return _fit("search", task, zoo, pool, cfg, tune_config, space=space, stop=stop)


def run_grid(
    task: Any,
    choices: list[BraidChoice],
    zoo: dict[str, str],
    pool: list[ModelFeatures],
    cfg: ArchSearchConfig,
) -> list[SweepRecord]:
    """Every grid choice trained to its full steps (no early stopping): the baseline the search must beat."""
    from ray import tune

    grid = {"choice": tune.grid_search([c.model_dump_json() for c in choices])}
    return _fit("grid", task, zoo, pool, cfg, _tune_config(cfg, num_samples=1), param_space=grid)


def _tune_config(cfg: ArchSearchConfig, **options: Any):
    from ray import tune

    return tune.TuneConfig(max_concurrent_trials=cfg.max_concurrent_trials, **options)


def _fit(
    arm: str,
    task: Any,
    zoo: dict[str, str],
    pool: list[ModelFeatures],
    cfg: ArchSearchConfig,
    tune_config: Any,
    space: ArchSpace | None = None,
    param_space: dict[str, Any] | None = None,
    stop: Any = None,
) -> list[SweepRecord]:
    """One Tune experiment of arch trials (``space``: searched ones; else grid choices in ``param_space``)."""
    import ray
    from ray import tune

    from tune.sweep import SweepConfig, results_to_records

    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    trainable = tune.with_parameters(
        arch_trainable, task=task, zoo=zoo, eval_every=cfg.eval_every, seed=cfg.seed, space=space
    )
    name = f"{cfg.name}-{arm}-{task.name}"
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=param_space or {},
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=name,
            storage_path=cfg.storage_path,
            stop=stop,
            verbose=cfg.verbose,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),  # fmt: skip
    )
    results = tuner.fit()
    return results_to_records(results, task, pool, SweepConfig(name=name, storage_path=cfg.storage_path))


def pool_features(zoo: dict[str, str], domains: dict[str, str] | None = None) -> list[ModelFeatures]:
    """Records' pool rows for models without zoo cards (the composition experts): read from each
    directory's config and weight headers, nothing loaded."""
    from safetensors import safe_open

    from braid.config import probe_architecture

    out = []
    for name, path in zoo.items():
        arch = probe_architecture(path)
        with safe_open(str(Path(path) / "model.safetensors"), "np") as f:
            params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 (safe_open is not a dict)
        out.append(
            ModelFeatures(
                name=name,
                family=arch.model_type,
                domain=(domains or {}).get(name, name),
                tokenizer=Path(path).name,
                vocab_size=arch.vocab_size,
                hidden=arch.hidden_size,
                layers=arch.num_layers,
                parameters=params,
                train_steps=0,
            )  # fmt: skip
        )
    return out
