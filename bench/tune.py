"""Tune: ASHA vs full-budget random search (same sampled configs, same seed), and how the best config differs
across task types.

Both arms use random search with one seed, so they draw the same configurations; ASHA only stops weak trials
early. Compute is the fusion training steps actually run (plus wall time); quality is each task's best score.

    python bench/tune.py [--smoke-test] [--num-samples N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import markdown_table, write_section  # noqa: E402
from tune.report import best, by_task, config_differences, pareto_plot  # noqa: E402
from tune.space import SearchSpace  # noqa: E402
from tune.sweep import SweepConfig, run_sweep  # noqa: E402
from tune.tasks import TaskSuite  # noqa: E402
from tune.trainable import member_scores  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"


def arm(scheduler: str, suite, space, zoo, pool, num_samples: int, storage: str):
    cfg = SweepConfig(
        name=f"bench-{scheduler}", num_samples=num_samples, search="random", scheduler=scheduler,
        eval_every=10, storage_path=storage, seed=0,
    )  # fmt: skip
    start = time.time()
    records, _ = run_sweep(suite, space, cfg, zoo, pool)
    return records, time.time() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke-test", action="store_true")
    parser.add_argument("--num-samples", type=int, default=12)
    args = parser.parse_args()
    import ray

    from braid.zoo.build import build_zoo, load_cards
    from tune.records import ModelFeatures

    zoo = build_zoo(tiny=True, progress=False)
    pool = [ModelFeatures.from_card(c) for c in load_cards(tiny=True)]
    n = 2 if args.smoke_test else args.num_samples
    suite = TaskSuite.default(n_train=16 if args.smoke_test else 64, n_eval=4 if args.smoke_test else 16)
    if args.smoke_test:
        suite = TaskSuite(tasks=suite.tasks[:1])
    space = SearchSpace(steps=(10,) if args.smoke_test else (20, 40, 80))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    with tempfile.TemporaryDirectory() as storage:
        asha, asha_s = arm("asha", suite, space, zoo, pool, n, storage)
        full, full_s = arm("fifo", suite, space, zoo, pool, n, storage)
    ray.shutdown()
    alone = {spec.name: member_scores(spec, zoo) for spec in suite.tasks}
    rows = []
    for task in by_task(full):
        a, f = by_task(asha)[task], by_task(full)[task]
        steps_a, steps_f = sum(r.steps_trained for r in a), sum(r.steps_trained for r in f)
        best_a, best_f = max(r.metrics["score"] for r in a), max(r.metrics["score"] for r in f)
        rows.append([task, f[0].task.metric, f"{best_f:.3f}", f"{best_a:.3f}", f"{best_a - best_f:+.3f}",
                     str(steps_f), str(steps_a), f"{steps_a / steps_f:.2f}",
                     str(sum(r.stopped_early for r in a))])  # fmt: skip
    total_a, total_f = sum(r.steps_trained for r in asha), sum(r.steps_trained for r in full)
    table = markdown_table(
        ["task", "metric", "best score, full", "best score, ASHA", "diff", "steps, full", "steps, ASHA",
         "compute ratio", "stopped early"], rows,
    )  # fmt: skip
    winners = {t: best(rs) for t, rs in by_task(full).items()}
    top = {t: max(alone[t].items(), key=lambda kv: kv[1]) for t in winners}
    bests = markdown_table(
        ["task", "type", "best anchor", "members", "strategy", "layers", "fusion_dim", "score",
         "best member alone", "beats it"],
        [[t, b.task.type, b.config.anchor, "+".join(b.config.members), b.config.strategy,
          str(list(b.config.fusion_layers)), str(b.config.fusion_dim), f"{b.metrics['score']:.3f}",
          f"{top[t][0]} {top[t][1]:.3f}", "yes" if b.metrics["score"] > top[t][1] else "no"]
         for t, b in winners.items()],
    )  # fmt: skip
    beating = beats_best_member(full, top)
    diffs = config_differences(full)
    summary = (
        f"Compute: ASHA ran {total_a} fusion steps vs {total_f} ({total_a / total_f:.0%}), wall {asha_s:.0f} s vs "
        f"{full_s:.0f} s ({asha_s / full_s:.0%}), {n} trials per task each.\n\n"
        f"Distinct best values across the {len(rows)} task types: "
        + ", ".join(f"{k} {v}" for k, v in diffs.items())
        + f"\n\n{beating}"
    )
    print(table, bests, summary, sep="\n\n")
    if not args.smoke_test:
        png = pareto_plot(full, DOCS / "tune_pareto.png")
        body = (
            f"{table}\n\n{SCORE_NOTE}\n\n{summary}\n\n{verdict(rows, total_a / total_f)}\n\nBest configuration per task "
            f"(full-budget arm):\n\n{bests}\n\nPareto plot (quality vs decode latency): `{png.relative_to(DOCS.parent)}`"
        )
        write_section(
            "tune", "Tune: ASHA vs full-budget random search (bench/tune.py)", "python bench/tune.py", body
        )


SCORE_NOTE = (
    "Score: -ln(char perplexity) for perplexity tasks, each character the anchor cannot write costing ln 256; "
    "for exact-answer tasks, minus the correct answer's NLL per character given the question (exact match and "
    "the greedy answer's correct-prefix share are in the records). Tiny zoo, random search, seed 0; ASHA: "
    "grace 1 report, reduction factor 2, one report per 10 steps."
)


def beats_best_member(records, top: dict[str, tuple[str, float]]) -> str:
    """How often a braid beats the best member alone on its task: Tune's best configurations, and all trials
    (by strategy level)."""
    winners = {t: best(rs) for t, rs in by_task(records).items()}
    won = sum(b.metrics["score"] > top[t][1] for t, b in winners.items())
    trials = [r for r in records if r.metrics["score"] > top[r.task.name][1]]
    levels: dict[str, int] = {}
    for r in trials:
        level = "+".join(p for p in ("hidden", "output") if p in _levels(r.config.strategy))
        levels[level] = levels.get(level, 0) + 1
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(levels.items())) or "none"
    return (
        f"Beating the best member alone (each member scored as an untrained braid of itself, by the same "
        f"evaluation): Tune's best configuration on {won} of {len(winners)} tasks; {len(trials)} of {len(records)} "
        f"trials ({detail})."
    )


def _levels(strategy: str) -> set[str]:
    from braid.fusion import split_strategy

    hidden, output = split_strategy(strategy)
    return {name for name, part in (("hidden", hidden), ("output", output)) if part}


def verdict(rows: list[list[str]], ratio: float) -> str:
    same = sum(float(r[4]) == 0 for r in rows)
    under = sum(float(r[7]) <= 0.5 for r in rows)
    met = "met" if ratio <= 0.5 and same == len(rows) else "not met"
    return (
        f"**Target (same best at <= 50% of the compute): {met} overall ({ratio:.0%} of the steps, same best on "
        f"{same} of {len(rows)} tasks); per task, {under} of {len(rows)} at <= 50%.**"
    )


if __name__ == "__main__":
    main()
