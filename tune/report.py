"""What a sweep found: the best config per task (a rich table), the Pareto front of quality vs latency (PNG),
and how much the best configs differ across task types."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from rich.table import Table

from tune.records import SweepRecord


def by_task(records: list[SweepRecord]) -> dict[str, list[SweepRecord]]:
    out: dict[str, list[SweepRecord]] = defaultdict(list)
    for r in records:
        out[r.task.name].append(r)
    return dict(out)


def best(records: list[SweepRecord]) -> SweepRecord:
    """Highest score among trials that trained their full budget (falling back to all trials)."""
    full = [r for r in records if not r.stopped_early] or records
    return max(full, key=lambda r: (r.metrics["score"], -r.cost.decode_ms))


def pareto_front(records: list[SweepRecord]) -> list[SweepRecord]:
    """Trials no other trial beats on both quality (score, up) and latency (decode_ms, down)."""
    front = []
    for r in records:
        dominated = any(
            o.metrics["score"] >= r.metrics["score"]
            and o.cost.decode_ms <= r.cost.decode_ms
            and (o.metrics["score"] > r.metrics["score"] or o.cost.decode_ms < r.cost.decode_ms)
            for o in records
        )
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: r.cost.decode_ms)


def best_table(records: list[SweepRecord]) -> Table:
    """One row per task; narrow enough for a 100-column terminal (the metric's name goes in the caption)."""
    groups = {name: best(rows) for name, rows in by_task(records).items()}
    metrics = sorted({b.task.metric for b in groups.values()})
    table = Table(title="best configuration per task", caption="value: " + ", ".join(metrics) + " (per task)")
    for col in ("task", "value", "braid (anchor + members)", "strategy", "layers", "dim", "lr", "ms/token"):
        table.add_column(col)
    for name, b in groups.items():
        others = [m for m in b.config.members if m != b.config.anchor]
        table.add_row(
            name, f"{b.metrics[b.task.metric]:.3f}", " + ".join([b.config.anchor, *others]), b.config.strategy,
            str(list(b.config.fusion_layers)), str(b.config.fusion_dim), f"{b.config.lr:.0e}",
            f"{b.cost.decode_ms:.1f}",
        )  # fmt: skip
    return table


def config_differences(records: list[SweepRecord]) -> dict[str, int]:
    """For each choice (anchor, members, strategy, layers, dim), how many distinct best values across tasks."""
    bests = [best(rows).config for rows in by_task(records).values()]
    keys = ("anchor", "members", "strategy", "fusion_layers", "fusion_dim")
    return {k: len({getattr(c, k) for c in bests}) for k in keys}


def pareto_plot(records: list[SweepRecord], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = by_task(records)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.8), squeeze=False)
    for ax, (name, rows) in zip(axes[0], groups.items(), strict=True):
        ax.scatter(
            [r.cost.decode_ms for r in rows], [r.metrics["score"] for r in rows], alpha=0.5, label="trials"
        )
        front = pareto_front(rows)
        ax.plot(
            [r.cost.decode_ms for r in front],
            [r.metrics["score"] for r in front],
            "o-",
            color="C3",
            label="Pareto front",
        )
        ax.set(
            title=f"{name} ({rows[0].task.metric})",
            xlabel="decode ms / token",
            ylabel="score (higher is better)",
        )
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
