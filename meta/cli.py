"""``braid meta train|decide|explain``: pretrain the meta-braider from sweep records (optionally continue with
episodes on the zoo), then ask it for a braid for a task."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from braid.paths import cache_dir, default_agent

console = Console()
app = typer.Typer(help="The meta-braider: learn which models to braid, where and how.", no_args_is_help=True)


def _task(task_type: str, complexity: float, capabilities: str, description: str):
    from pydantic import ValidationError

    from meta.features import MetaTask

    try:
        caps = tuple(c.strip() for c in capabilities.split(",") if c.strip())
        return MetaTask(type=task_type, complexity=complexity, capabilities=caps, description=description)
    except ValidationError as e:
        raise typer.BadParameter(str(e)) from None


@app.command("train")
def train(
    records: Path = typer.Option(..., exists=True, dir_okay=False, help="sweep records JSONL (braid tune)"),
    out: Path | None = typer.Option(
        None, help="where to save the agent (default: $BRAID_CACHE/meta-braider.pt)"
    ),
    steps: int = typer.Option(300, min=1, help="supervised pretraining steps"),
    episodes: int = typer.Option(0, min=0, help="then this many episodes on real tiny-zoo braids"),
    space: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="the sweep's search-space YAML (default: braid tune's)"
    ),
    seed: int = 0,
) -> None:
    """Pretrain from sweep records (scores and costs of every trial), optionally continue with episodes."""
    from meta.agent import MetaBraider
    from meta.learn import observations_from_records, pretrain
    from meta.net import DecisionSpace
    from tune.records import load_records
    from tune.space import SearchSpace

    try:
        rows = load_records(records)
        grid = DecisionSpace.from_search(SearchSpace.from_yaml(space) if space else SearchSpace())
    except ValueError as e:  # bad records, or a search space that does not validate
        raise typer.BadParameter(str(e)) from None
    agent = MetaBraider(list(rows[0].pool), grid, paths=_zoo_paths(rows))
    obs = observations_from_records(agent, rows)
    losses = pretrain(agent, obs, steps=steps, seed=seed, progress=True)
    if episodes:
        from meta.trainer import MetaBraiderTrainer
        from tune.tasks import TaskSuite

        MetaBraiderTrainer(agent, TaskSuite.default(n_train=32, n_eval=8).tasks, seed=seed).train(episodes)
    out = out or cache_dir() / "meta-braider.pt"  # your own; never the demo's
    out.parent.mkdir(parents=True, exist_ok=True)
    agent.save(out)
    console.print(f"{len(obs)} of {len(rows)} records used; final loss {losses[-1]:.4f}; saved -> {out}")


def _zoo_paths(rows) -> dict[str, str]:
    """Checkpoint paths for the records' pool when it is the (tiny) zoo built here; empty otherwise."""
    from braid.zoo.build import zoo_spec

    names = {m.name for m in rows[0].pool}
    for tiny in (True, False):
        if names <= {m.name for m in zoo_spec(tiny).members}:
            from braid.zoo.build import build_zoo

            return build_zoo(tiny=tiny, progress=False)
    return {}


def _load(agent: Path | None):
    from meta.agent import MetaBraider

    agent = agent or default_agent()  # looked up when asked: the demo may have written one since
    if not agent.exists():
        raise typer.BadParameter(f"no agent at {agent}; run `braid meta train --records ...` first")
    return MetaBraider.load(agent)


TaskType = typer.Option(..., "--type", help="task type, e.g. code_completion (unseen types are fine)")


@app.command("decide")
def decide(
    task_type: str = TaskType,
    complexity: float = typer.Option(0.5, min=0.0, max=1.0),
    capabilities: str = typer.Option("", help="comma-separated, e.g. code,reasoning"),
    description: str = typer.Option("", help="what the task is, in words (embedded)"),
    compute_budget: float | None = typer.Option(None, help="max share of the pool's parameters (0-1]"),
    latency: float | None = typer.Option(None, help="max decode ms per token"),
    accuracy: float | None = typer.Option(
        None, min=0.0, max=1.0, help="min quality 0-1: share of the best score measured for the task type"
    ),
    agent: Path | None = typer.Option(None, help="default: $BRAID_CACHE/meta-braider.pt, else the demo's"),
) -> None:
    """Print the braid the agent chooses for a task."""
    from meta.agent import Infeasible

    meta = _load(agent)
    task = _task(task_type, complexity, capabilities, description)
    try:
        d = meta(task, compute_budget=compute_budget, latency_requirement=latency, accuracy_target=accuracy)
    except Infeasible as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    table = Table("field", "value", title=f"braid for a {task.type} task")
    for k, v in d.model_dump(exclude_none=True).items():
        table.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    console.print(table)


@app.command("explain")
def explain(
    task_type: str = TaskType,
    complexity: float = typer.Option(0.5, min=0.0, max=1.0),
    capabilities: str = typer.Option(""),
    description: str = typer.Option(""),
    compute_budget: float | None = typer.Option(None),
    agent: Path | None = typer.Option(None, help="default: $BRAID_CACHE/meta-braider.pt, else the demo's"),
) -> None:
    """The decision with its reasons: the policy's confidence in each choice and the constraint that bound."""
    from meta.agent import Infeasible

    meta = _load(agent)
    try:
        _, text = meta.forward_with_explanation(
            _task(task_type, complexity, capabilities, description), compute_budget=compute_budget
        )
    except Infeasible as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    console.print(text)
