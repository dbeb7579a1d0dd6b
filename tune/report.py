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
    return _save(fig, path)


def layer_map_plot(records: list[SweepRecord], path: str | Path) -> Path:
    """One panel per record: each member's layers as a column (anchor first), a line from every source
    layer to the anchor block it feeds, labelled with the point's strategy and width; the output head, if
    any, above. Grid braids draw their proportional sources."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from braid.config import proportional_layer

    fig, axes = plt.subplots(1, len(records), figsize=(3.2 * len(records), 3.6), squeeze=False)
    for ax, r in zip(axes[0], records, strict=True):
        c, depths = r.config, {m.name: m.layers for m in r.pool}
        order = c.ordered_members()
        for x, m in enumerate(order):
            ax.scatter([x] * depths[m], range(depths[m]), s=90, color="C0" if x == 0 else "C7", zorder=3)
        for i, block in enumerate(c.fusion_layers):
            point = c.points[i] if c.points else None
            who = point.members if point and point.members else c.members
            for x, m in enumerate(order[1:], 1):
                if m not in who:
                    continue
                src = (
                    c.layer_map[m][i]
                    if c.layer_map
                    else proportional_layer(block, depths[c.anchor], depths[m])
                )
                ax.plot([x, 0], [src, block], color=f"C{i + 1}", lw=2)
            label = f"{(point.strategy if point else None) or c.strategy.split('+')[0]}/{(point.fusion_dim if point else None) or c.fusion_dim}"
            ax.annotate(label, (0, block), xytext=(-0.45, block + 0.15), fontsize=7, color=f"C{i + 1}")
        head = [s for s in c.strategy.split("+") if s in ("output_router", "pointer")]
        top = max(depths[m] for m in order)
        ax.text(0, top, f"output: {head[0]}" if head else "no output head", fontsize=7, ha="left")
        ax.set(xticks=range(len(order)), xlim=(-0.6, len(order) - 0.4), ylim=(-0.5, top + 0.6),
               title=f"{r.task.name} ({r.metrics['score']:.3f})", ylabel="layer")  # fmt: skip
        ax.set_xticklabels(order, fontsize=7, rotation=20)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
