"""``braid tune``: submit sweeps (locally or to a cluster with --address), then show the best configs and the
Pareto plot."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


def tune_command(
    tasks: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="tasks YAML; default: the built-in suite"
    ),
    num_samples: int = typer.Option(8, help="trials per task"),
    space: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="search-space YAML (narrow/extend)"
    ),
    address: str | None = typer.Option(None, help="Ray cluster address (ray://... or auto); default: local"),
    name: str = typer.Option("sweep", help="sweep name; re-running the same name resumes it"),
    search: str = typer.Option("optuna", help="optuna (TPE, quality x latency) or random"),
    scheduler: str = typer.Option("asha", help="asha or fifo"),
    tiny: bool = typer.Option(True, help="use the tiny zoo (fast); --no-tiny for the full zoo"),
    storage_path: Path | None = typer.Option(
        None, help="default: $BRAID_CACHE/sweeps (~/.cache/llm-braid/sweeps)"
    ),
    plot: Path | None = typer.Option(None, help="Pareto PNG; default: next to the records"),
) -> None:
    """Sweep braiding configurations per task; writes versioned sweep records (JSONL)."""
    from pydantic import ValidationError

    from braid.zoo.build import build_zoo, load_cards, zoo_spec
    from tune.records import ModelFeatures
    from tune.report import best_table, pareto_plot
    from tune.space import SearchSpace
    from tune.sweep import SweepConfig, SweepInterrupted, run_sweep
    from tune.tasks import TaskSuite

    try:  # every input is validated before Ray starts or a model loads
        suite = TaskSuite.from_yaml(tasks) if tasks else TaskSuite.default()
        search_space = SearchSpace.from_yaml(space) if space else SearchSpace()
        extra = {"storage_path": str(storage_path)} if storage_path else {}
        cfg = SweepConfig(name=name, num_samples=num_samples, search=search, scheduler=scheduler, **extra)
        search_space.braids([m.name for m in zoo_spec(tiny).members])  # a name outside the pool fails here
    except (ValidationError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None
    zoo = build_zoo(tiny=tiny)
    pool = [ModelFeatures.from_card(c) for c in load_cards(tiny=tiny)]
    try:
        records, path = run_sweep(suite, search_space, cfg, zoo, pool, address=address)
    except SweepInterrupted as e:
        console.print(f"[yellow]{e}[/yellow]")
        raise typer.Exit(130) from None
    console.print(best_table(records))
    png = pareto_plot(records, plot or path.with_suffix(".pareto.png"))
    console.print(f"{len(records)} records -> {path}\nPareto plot -> {png}")
