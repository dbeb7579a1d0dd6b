"""A sweep run as its own process, so the restore test can interrupt it (SIGINT) and resume it."""

import sys

import ray

from braid.zoo.build import build_zoo, load_cards
from tune.records import ModelFeatures
from tune.space import SearchSpace
from tune.sweep import SweepConfig, run_sweep
from tune.tasks import TaskSpec, TaskSuite


def main(zoo_cache: str, storage: str, num_samples: int) -> None:
    zoo = build_zoo(tiny=True, cache_dir=zoo_cache, progress=False)
    pool = [ModelFeatures.from_card(c) for c in load_cards(tiny=True, cache_dir=zoo_cache)]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    suite = TaskSuite(tasks=[TaskSpec(name="prose-lm", type="language_modeling", n_train=16, n_eval=4)])
    space = SearchSpace(steps=(40,), fusion_dims=(8,), strategies=("router",))
    cfg = SweepConfig(name="resume", num_samples=num_samples, eval_every=5, storage_path=storage,
                      scheduler="fifo", max_concurrent_trials=1)  # fmt: skip
    records, _ = run_sweep(suite, space, cfg, zoo, pool)
    print("RECORDS", len(records), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
