"""Fusion-architecture search (#25 part 2) against the sweep grid, at no more compute.

Two tasks: bench/composition.py's (three models; answer ``key=`` with ``abc|7``; fusion trains on keys 0-29,
trials are ranked on keys 30-39, winners tested on keys 40-59; 300 steps a trial, a report every 25) and a
braid-bench domain pair (prose-llama anchoring facts-mistral, full zoo; per-character perplexity on
prose+facts: 32 train texts per domain, 24 validation, 32 test; 100 steps a trial, a report every 20). Per
seed, the grid trains every configuration of the sweep's space for the member set (strategy x points x
placement, width 32) to the full budget; the search (TPE through Tune + ASHA over per-point blocks, source
layers, strategies, widths, members and the output head) runs until its trials' training steps reach the
grid's. Each arm's winner is its best validation score; its test score is what the tables compare. Compute
is fusion training steps (what the trials reported), wall time beside it.

    python bench/arch_search.py [--seeds 3] [--tasks composition,pair] [--smoke-test]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import markdown_table, write_section  # noqa: E402
from tune.arch import ArchSearchConfig, ArchSpace, grid_choices, pool_features, run_grid, run_search  # noqa: E402
from tune.records import write_records  # noqa: E402

HIDDEN = ("learned_weighted", "attention", "router", "calm")
OUTPUT = ("output_router", "pointer")
RECORDS = ROOT / "docs" / "arch_search.records.jsonl"


def composition_setup(seed: int, root: Path, smoke: bool) -> tuple:
    from braid.zoo.composition import build_models, task
    from tune.compound import CompositionTask

    paths, _ = build_models(root / f"composition-{seed}", task(seed), 40 if smoke else 600, seed)
    members = ("anchor", "letters", "digit")
    return CompositionTask(seed=seed, tokenizer=paths["anchor"]), paths, members, pool_features(paths)


def pair_setup(seed: int, root: Path, smoke: bool) -> tuple:
    from braid.zoo.build import build_zoo, load_cards
    from tune.compound import MixtureTask
    from tune.records import ModelFeatures

    members = ("prose-llama", "facts-mistral")
    zoo = {k: v for k, v in build_zoo(tiny=smoke, progress=False).items() if k in members}
    pool = [ModelFeatures.from_card(c) for c in load_cards(tiny=smoke) if c["name"] in members]
    n, n_eval, n_test = (4, 2, 2) if smoke else (32, 24, 32)
    task = MixtureTask(
        name="prose-facts", domains=("prose", "facts"), n_train=n, n_eval=n_eval, n_test=n_test, seed=seed
    )
    return task, zoo, members, pool


# setup, full steps per trial, steps per report
TASKS = {"composition": (composition_setup, 300, 25), "pair": (pair_setup, 100, 20)}
CACHE = Path.home() / ".cache" / "llm-braid" / "bench-arch-v2"  # one file per task and seed


def cached_run(name: str, seed: int, root: Path, smoke: bool) -> dict:
    """``one_run``, kept on disk (records, seconds, test scores) so a long benchmark resumes where it
    stopped and a later run with other ``--tasks`` reuses what was measured."""
    from tune.records import SweepRecord

    path = CACHE / f"{name}-s{seed}.json"
    if not smoke and path.exists():
        saved = json.loads(path.read_text())
        for arm in saved.values():
            arm["records"] = [SweepRecord.model_validate_json(r) for r in arm["records"]]
            arm["winner"] = max(arm["records"], key=lambda r: r.metrics["score"])
        return saved
    out = one_run(name, seed, root, smoke)
    if not smoke:
        path.parent.mkdir(parents=True, exist_ok=True)
        keep = {a: {"records": [r.model_dump_json() for r in v["records"]], "seconds": v["seconds"],
                    "test": v["test"]} for a, v in out.items()}  # fmt: skip
        path.write_text(json.dumps(keep))
    return out


def one_run(name: str, seed: int, root: Path, smoke: bool) -> dict:
    """Both arms on one task and seed: {arm: {"records", "seconds", "test", "winner"}}."""
    setup, steps, every = TASKS[name]
    steps, every = (4, 2) if smoke else (steps, every)
    task, zoo, members, pool = setup(seed, root, smoke)
    from braid.config import probe_architecture

    depth = probe_architecture(zoo[members[0]]).num_layers
    cfg = ArchSearchConfig(
        name=f"bench-{name}-s{seed}",
        eval_every=every,
        seed=seed,
        storage_path=str(root / "tune"),
    )
    out = {}
    start = time.time()
    grid = grid_choices(members, depth, HIDDEN + OUTPUT, steps=steps)
    out["grid"] = {"records": run_grid(task, grid[:3] if smoke else grid, zoo, pool, cfg)}
    out["grid"]["seconds"] = time.time() - start
    budget = sum(r.steps_trained for r in out["grid"]["records"])
    # the stopper sees steps as they are reported: leave a report's worth per concurrent trial of headroom
    budget -= cfg.eval_every * cfg.max_concurrent_trials
    space = ArchSpace(members=members, strategies=HIDDEN, outputs=("none", *OUTPUT), steps=steps)
    start = time.time()
    out["search"] = {
        "records": run_search(task, space, zoo, pool, cfg.model_copy(update={"budget_steps": budget}))
    }
    out["search"]["seconds"] = time.time() - start
    for arm in out.values():
        arm["winner"] = max(arm["records"], key=lambda r: r.metrics["score"])
        arm["test"] = test_score(task, arm["winner"], zoo, seed)
    print(
        f"{name} seed {seed}: " + ", ".join(f"{a} test {v['test']['score']:.3f}" for a, v in out.items()),
        flush=True,
    )
    return out


def test_score(task, record, zoo: dict[str, str], seed: int) -> dict[str, float]:
    """The winner's fusion on the task's test split: its trial's last checkpoint, or (a trial the budget
    stopped before Tune kept one) the same choice retrained, with the trial's seed, for the steps it ran."""
    import shutil

    from braid.checkpoint import fusion_path
    from tune.trainable import build_braid, run_trial

    braided = build_braid(record.config, zoo)
    if record.checkpoint is None:
        kept = Path(tempfile.mkdtemp())
        choice = record.config.model_copy(update={"steps": record.steps_trained})
        copy = lambda m, ckpt: shutil.copy(fusion_path(ckpt), fusion_path(kept))  # noqa: E731
        run_trial({}, task, zoo, copy, record.steps_trained, None, seed, to_choice=lambda _: choice)
        braided.load_fusion_layers(fusion_path(kept))
    else:
        braided.load_fusion_layers(fusion_path(record.checkpoint))
    braided.eval()
    return task.test(braided)


def cell(values: list[float], fmt: str = "{:.3f}") -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{fmt.format(statistics.fmean(values))} ± {fmt.format(sd)}"


def task_table(name: str, runs: list[dict]) -> str:
    rows = []
    for arm in ("grid", "search"):
        rs = [r[arm] for r in runs]
        steps = [sum(x.steps_trained for x in r["records"]) for r in rs]
        row = [arm, cell([len(r["records"]) for r in rs], "{:.1f}"), cell(steps, "{:.0f}"),
               cell([r["seconds"] for r in rs], "{:.0f}"), cell([r["winner"].metrics["score"] for r in rs]),
               cell([r["test"]["score"] for r in rs])]  # fmt: skip
        if name == "composition":
            row.append(cell([r["test"]["exact_match"] for r in rs], "{:.0%}"))
        else:
            row.append(cell([r["test"]["char_perplexity"] for r in rs]))
        rows.append(row)
    last = "test exact answer" if name == "composition" else "test char perplexity"
    header = ["arm", "trials", "compute (steps)", "wall s", "best validation score", "test score", last]
    return markdown_table(header, rows)


def verdict(runs: list[dict]) -> str:
    wins = sum(
        r["search"]["test"]["score"] > r["grid"]["test"]["score"]
        and sum(x.steps_trained for x in r["search"]["records"])
        <= sum(x.steps_trained for x in r["grid"]["records"])
        for r in runs
    )
    gain = statistics.fmean(r["search"]["test"]["score"] - r["grid"]["test"]["score"] for r in runs)
    return f"search beats grid at no more compute on {wins} of {len(runs)} seeds; mean test-score gain {gain:+.3f}"


def winners_table(results: dict[str, list[dict]]) -> str:
    rows = []
    for name, runs in results.items():
        for seed, r in enumerate(runs):
            for arm in ("grid", "search"):
                c = r[arm]["winner"].config
                rows.append([name, str(seed), arm, describe(c), f"{r[arm]['test']['score']:.3f}"])
    return markdown_table(["task", "seed", "arm", "winner architecture", "test score"], rows)


def describe(c) -> str:
    """A winner in one line: per point `block<-member:layer,... strategy/width`, then the output head."""
    parts = []
    for i, block in enumerate(c.fusion_layers):
        point = c.points[i] if c.points else None
        who = point.members if point and point.members else c.members
        src = ",".join(f"{m}:{c.layer_map[m][i]}" if c.layer_map else m for m in who if m != c.anchor)
        strategy = (point.strategy if point else None) or c.strategy.split("+")[0]
        parts.append(f"{block}<-{src} {strategy}/{(point.fusion_dim if point else None) or c.fusion_dim}")
    head = [s for s in c.strategy.split("+") if s in OUTPUT]
    return "; ".join(parts + [f"output {head[0]}/{c.fusion_dim}" if head else "no output head"])


def run(seeds: int, tasks: list[str], smoke: bool) -> None:
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in tasks:
            results[name] = [cached_run(name, seed, Path(tmp), smoke) for seed in range(seeds)]
    records = [x for runs in results.values() for r in runs for arm in r.values() for x in arm["records"]]
    tables = {name: task_table(name, runs) for name, runs in results.items()}
    body = "\n\n".join(f"**{name}** ({verdict(runs)}):\n\n{tables[name]}" for name, runs in results.items())
    print(body, winners_table(results), sep="\n\n")
    if smoke:
        return
    write_records(records, RECORDS)
    from tune.report import layer_map_plot

    png = layer_map_plot([r[arm]["winner"] for runs in results.values() for r in runs for arm in ("search",)],
                         ROOT / "docs" / "arch_layer_map.png")  # fmt: skip
    write_section(
        "arch_search", "Fusion-architecture search vs the grid (bench/arch_search.py)",
        f"python bench/arch_search.py --seeds {seeds} --tasks {','.join(tasks)}",
        f"{__doc__.split(chr(10) + chr(10))[1]}\n\nMean ± sd over {seeds} seeds.\n\n{body}\n\nWinners:\n\n"
        f"{winners_table(results)}\n\nLayer map of the searched winners: `{png.relative_to(ROOT)}`; every trial "
        f"of both arms is a sweep record in `{RECORDS.relative_to(ROOT)}` ({len(records)} rows).",
    )  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default="composition,pair")
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    run(1 if args.smoke_test else args.seeds, args.tasks.split(","), args.smoke_test)
