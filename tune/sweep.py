"""Run sweeps: one Ray Tune experiment per task (OptunaSearch TPE on quality x latency, ASHA early stopping),
resumable with Tuner.restore, exported as sweep records.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from braid.paths import cache_dir
from braid.spec import parse_members_key
from tune.records import Cost, ModelFeatures, SweepRecord, write_records
from tune.space import BraidChoice, SearchSpace
from tune.tasks import TaskSpec, TaskSuite


class SweepInterrupted(RuntimeError):
    """The sweep stopped before every trial finished (Ctrl-C, a lost cluster): run it again to resume."""


class SweepConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field("sweep", pattern=r"^[A-Za-z0-9_.-]+$")
    num_samples: int = Field(8, ge=1, description="trials per task")
    search: Literal["optuna", "random"] = "optuna"
    scheduler: Literal["asha", "fifo"] = "asha"
    eval_every: int = Field(10, ge=1, description="training steps per report (one ASHA time unit)")
    grace_period: int = Field(1, ge=1, description="ASHA: reports before a trial can be stopped")
    reduction_factor: int = Field(2, ge=2)
    max_concurrent_trials: int | None = Field(None, ge=1)
    seed: int = 0
    points_to_evaluate: tuple[dict, ...] | None = Field(
        None, description="configs to try first (known-good ones)"
    )
    verbose: int = Field(1, ge=0, le=3, description="Tune's console output (0: silent)")
    progress: bool = Field(True, description="a progress bar per task: trials finished, best score so far")
    storage_path: str = Field(default_factory=lambda: str(cache_dir() / "sweeps"))


def _searcher(cfg: SweepConfig):
    points = [dict(p) for p in cfg.points_to_evaluate] if cfg.points_to_evaluate else None
    if cfg.search == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # TuneConfig.max_concurrent_trials applies only to Searchers; this generator takes its own limit
        return BasicVariantGenerator(
            random_state=cfg.seed, points_to_evaluate=points, max_concurrent=cfg.max_concurrent_trials or 0
        )
    from ray.tune.search.optuna import OptunaSearch

    # multi-objective TPE: quality up, decode latency down
    return OptunaSearch(
        metric=["score", "decode_ms"], mode=["max", "min"], seed=cfg.seed, points_to_evaluate=points
    )


def _scheduler(cfg: SweepConfig, space: SearchSpace):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if cfg.scheduler == "fifo":
        return FIFOScheduler()
    max_t = -(-max(space.steps) // cfg.eval_every)
    return ASHAScheduler(
        time_attr="training_iteration",
        metric="score",
        mode="max",
        max_t=max_t,
        grace_period=min(cfg.grace_period, max_t),
        reduction_factor=cfg.reduction_factor,
    )


def tuner_for(task: TaskSpec, space: SearchSpace, cfg: SweepConfig, zoo: dict[str, str]):
    """A new Tuner for one task, or the restored one when this experiment exists (an interrupted sweep)."""
    from ray import tune

    from tune.trainable import braid_trainable

    gpus = _cluster_gpus()
    trainable = tune.with_parameters(
        braid_trainable, task=task.model_dump(), zoo=zoo, eval_every=cfg.eval_every, seed=cfg.seed
    )
    # one GPU per member when the cluster has GPUs; otherwise one CPU per trial
    per_trial = (lambda c: {"cpu": 1, "gpu": len(parse_members_key(c["braid"])[1])}) if gpus else {"cpu": 1}
    trainable = tune.with_resources(trainable, per_trial)
    path = Path(cfg.storage_path) / f"{cfg.name}-{task.name}"
    if tune.Tuner.can_restore(str(path)):
        return tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=True)
    return tune.Tuner(
        trainable,
        param_space=space.param_space(list(zoo)),
        tune_config=tune.TuneConfig(
            search_alg=_searcher(cfg),
            scheduler=_scheduler(cfg, space),
            num_samples=cfg.num_samples,
            max_concurrent_trials=cfg.max_concurrent_trials,
        ),
        run_config=tune.RunConfig(
            name=path.name,
            storage_path=str(path.parent),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=cfg.verbose,
            callbacks=[trial_progress(task.name, cfg.num_samples)] if cfg.progress else None,
        ),
    )


def trial_progress(task: str, total: int):
    """A Tune callback drawing one tqdm bar for a task's trials: finished (or errored) of ``total``, with the
    best score reported so far."""
    from ray import tune
    from tqdm.auto import tqdm

    class TrialProgress(tune.Callback):
        def setup(self, **info) -> None:
            self.bar = tqdm(total=total, desc=f"sweep {task}", unit="trial")
            self.best: float | None = None

        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            if "score" in result and (self.best is None or result["score"] > self.best):
                self.best = float(result["score"])
                self.bar.set_postfix(best_score=f"{self.best:.3f}")

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self.bar.update(1)

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            self.bar.update(1)

        def on_experiment_end(self, trials, **info) -> None:
            self.bar.close()

    return TrialProgress()


def _cluster_gpus() -> float:
    import ray

    return ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else 0


def results_to_records(
    results, task: TaskSpec, pool: list[ModelFeatures], cfg: SweepConfig
) -> list[SweepRecord]:
    """One record per trial that reported at least once (errored trials without results are skipped)."""
    rows = []
    for r in results:
        m = r.metrics or {}
        if "score" not in m:
            continue
        choice = BraidChoice.model_validate_json(m["choice"])
        rows.append(
            SweepRecord(
                sweep=cfg.name,
                trial_id=m["trial_id"],
                task=task.info,
                pool=tuple(pool),
                config=choice,
                metrics={k: float(m[k]) for k in ("score", task.info.metric, "train_loss") if k in m},
                cost=Cost(**{k: m[k] for k in Cost.model_fields}),
                iterations=int(m["training_iteration"]),
                steps_trained=int(m["steps_trained"]),
                stopped_early=int(m["steps_trained"]) < choice.steps,
                checkpoint=r.checkpoint.path if r.checkpoint is not None else None,
            )
        )
    return rows


def run_sweep(
    suite: TaskSuite,
    space: SearchSpace,
    cfg: SweepConfig,
    zoo: dict[str, str],
    pool: list[ModelFeatures],
    address: str | None = None,
    records_path: str | Path | None = None,
) -> tuple[list[SweepRecord], Path]:
    """Sweep every task in turn; write (and return) the records. Re-running resumes unfinished experiments."""
    import ray

    # one checkpoint per report is by design (ASHA may stop a trial after any report); silence Tune's nag
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    records: list[SweepRecord] = []
    for task in suite.tasks:
        results = tuner_for(task, space, cfg, zoo).fit()
        finished = results.num_terminated + results.num_errors
        if finished < cfg.num_samples:
            raise SweepInterrupted(
                f"sweep {cfg.name!r}, task {task.name!r}: {finished}/{cfg.num_samples} trials finished; "
                "run the same command again to resume it"
            )
        records += results_to_records(results, task, pool, cfg)
    path = Path(records_path or Path(cfg.storage_path) / f"{cfg.name}.records.jsonl")
    return records, write_records(records, path)
