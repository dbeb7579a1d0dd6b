"""The ``braid`` command line: the composition root above every package (train, generate, inspect, demo, and
the tune / meta / serve / memory / tools subcommands, each loaded only when used)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from braid.jobs import TrainJob

app = typer.Typer(help="Braid frozen causal LMs through small trained fusion modules.", no_args_is_help=True)
console = Console()


def read_examples(path: Path) -> list[Any]:
    """.txt: one example per non-empty line; .jsonl: {"text": ...} or {"input_ids": [...], "labels": [...]}."""
    if not path.is_file():
        _fail(f"data file {path} does not exist")
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        _fail(
            f"data file {path} has no examples: one per non-empty line (.txt) or JSON object per line (.jsonl)"
        )
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(lines, 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                _fail(f"data file {path}: example {n} is not JSON ({e.msg})")
        return [r.get("text", r) for r in rows]
    return lines


def read_yaml(path: Path) -> dict:
    """A YAML mapping, or one line naming what is wrong with the file (exit 2)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        _fail(f"{path} is not valid YAML{where}: {getattr(e, 'problem', None) or e}")
    if not isinstance(raw, dict):
        _fail(f"{path} is empty or not a mapping of settings")
    return raw


def load_job(path: Path, **flags: Any) -> TrainJob:
    """The job in ``path`` completed by flags, the environment and .env (``braid.jobs.complete``)."""
    from braid.jobs import TrainJob, complete

    try:
        return TrainJob.model_validate(complete(read_yaml(path), **flags))
    except ValidationError as e:
        _fail(f"invalid config {path}: {_first_line(e)}")
    except ValueError as e:
        _fail(f"{path}: {e}")


@app.command()
def train(
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="train YAML"),
    model: list[str] = typer.Option(
        None, "--model", help="a member (path or hub id); repeat; the first anchors"
    ),
    data: Path | None = typer.Option(None, help="training examples (.txt or .jsonl); overrides data.train"),
    eval_data: Path | None = typer.Option(None, help="held-out examples; overrides data.eval"),
    output_dir: Path | None = typer.Option(None, help="where to save the braid; overrides output_dir"),
    fusion_strategy: str | None = typer.Option(None, help="overrides the file and FUSION_STRATEGY"),
) -> None:
    """Train a braid's fusion modules (bases frozen) and save it with save_pretrained. Settings: flags, then
    the file, then the environment (MODEL_A_PATH, MODEL_B_PATH, ..., FUSION_STRATEGY), then .env."""
    from braid.braided import BraidedLLM
    from braid.train import train_fusion

    job = load_job(config, models=model, data=data, eval_data=eval_data, output_dir=output_dir,
                   fusion_strategy=fusion_strategy)  # fmt: skip
    train_data = read_examples(job.data.train)
    eval_data = read_examples(job.data.eval) if job.data.eval else None
    braided = BraidedLLM(config=job.braid)
    console.print(
        f"{braided.num_fusion_parameters():,} fusion parameters; {len(train_data)} training examples"
    )
    history = train_fusion(braided, train_data, job.train, eval_dataset=eval_data)
    braided.save_pretrained(job.output_dir)
    (job.output_dir / "history.json").write_text(json.dumps(history.__dict__, indent=1))
    table = Table(title=f"saved to {job.output_dir}")
    table.add_column("step", justify="right")
    table.add_column("train loss", justify="right")
    table.add_column("eval loss", justify="right")
    for step, loss in zip(history.eval_steps, history.eval_loss, strict=True):
        table.add_row(str(step), f"{history.train_loss[step - 1]:.4f}", f"{loss:.4f}")
    if not history.eval_steps:
        table.add_row(str(len(history.train_loss)), f"{history.train_loss[-1]:.4f}", "-")
    console.print(table)


@app.command()
def generate(
    braid_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="a save_pretrained directory"),
    prompt: str = typer.Argument(...),
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float = 1.0,
    stop: list[str] = typer.Option(None, "--stop"),
) -> None:
    """Stream a continuation of PROMPT from a saved braid."""
    from braid.braided import BraidedLLM
    from braid.checkpoint import read_config
    from braid.generation import check_prompt
    from braid.sampling import SamplingParams

    try:
        read_config(braid_dir)
    except ValueError as e:
        _fail(str(e))
    try:  # settings are checked before any weights load
        SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, stop=stop)
        if not prompt:
            check_prompt([], prompt, max_new_tokens)
    except ValueError as e:
        _fail(_first_line(e))
    braided = BraidedLLM.from_pretrained(braid_dir)
    try:
        pieces = braided.generate(
            prompt,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            stop=stop,
            stream=True,
        )
        for piece in pieces:
            console.print(piece, end="", soft_wrap=True)
    except ValueError as e:  # the prompt does not fit a member's positions
        _fail(_first_line(e))
    console.print()


def _fail(message: str) -> NoReturn:
    """A mistake the user can fix: one line on stderr, exit code 2."""
    Console(stderr=True).print(f"[red]error:[/red] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def _first_line(e: Exception) -> str:
    """A validation error's field and message, without pydantic's trailing URL lines."""
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        err, more = e.errors()[0], len(e.errors()) - 1
        extra = f" (and {more} more)" if more else ""
        return f"{'.'.join(map(str, err['loc'])) or 'value'}: {err['msg']}{extra}"
    return str(e).splitlines()[0]


@app.command()
def info(
    config: Path = typer.Argument(..., exists=True, help="braid YAML, or a save_pretrained directory"),
) -> None:
    """Show a braid's members, fusion plan and sizes (reads configs only, no weights)."""
    from braid.checkpoint import read_config
    from braid.config import BraidConfig
    from braid.jobs import TrainJob
    from braid.nested import config_tree

    try:
        if config.is_dir():
            cfg = read_config(config)
        else:  # a braid YAML, or a `braid train` YAML (its braid section, or the seed's flat keys)
            raw = read_yaml(config)
            cfg = TrainJob.model_validate(raw).braid if "data" in raw else BraidConfig.model_validate(raw)
    except ValidationError as e:
        _fail(f"invalid config {config}: {_first_line(e)}")
    except ValueError as e:  # a directory save_pretrained did not write
        _fail(str(e))
    table = Table(title=f"{cfg.fusion_strategy} braid, fusion_dim {cfg.fusion_dim}")
    for col in ("#", "model", "role", "type", "layers", "hidden", "fusion at blocks"):
        table.add_column(col)
    roles = [m.role or "" for m in cfg.model_configs]
    for row in config_tree(cfg):  # an inner braid's members indented under it
        indent = "  " * row.depth + ("└ " if row.depth else "")
        table.add_row(
            indent + str(row.index), row.name + (" (anchor)" if row.anchor else ""),
            roles[row.index] if row.depth == 0 else "", row.what, str(row.num_layers), str(row.hidden_size),
            ", ".join(map(str, row.fusion_blocks)),
        )  # fmt: skip
    console.print(table)


def _memory_app() -> typer.Typer:
    from memory.cli import app as memory_app

    return memory_app


app.add_typer(_memory_app(), name="memory")


def _tool_apps() -> tuple[typer.Typer, typer.Typer]:
    from tools.cli import mcp_app, tools_app

    return tools_app, mcp_app


_tools_app, _mcp_app = _tool_apps()
app.add_typer(_tools_app, name="tools")
app.add_typer(_mcp_app, name="mcp")


def _tune_command():
    from tune.cli import tune_command

    return tune_command


app.command("tune")(_tune_command())


def _meta_app() -> typer.Typer:
    from meta.cli import app as meta_app

    return meta_app


app.add_typer(_meta_app(), name="meta")


def _serve_command():
    from serve.cli import serve_command

    return serve_command


app.command("serve")(_serve_command())
zoo_app = typer.Typer(help="The zoo of small specialist models trained here.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")


@zoo_app.command("build")
def zoo_build(
    tiny: bool = typer.Option(False, help="small and fast (about a minute): for tests and the demo"),
    cache_dir: Path | None = typer.Option(None, help="default: $BRAID_CACHE or ~/.cache/llm-braid"),
    seed: int = 0,
) -> None:
    """Train (or reuse) the zoo's members and print their model cards."""
    from braid.zoo.build import build_zoo, cards_table, load_cards

    paths = build_zoo(tiny=tiny, cache_dir=cache_dir, seed=seed)
    console.print(cards_table(load_cards(tiny, cache_dir)))
    console.print(f"in {Path(next(iter(paths.values()))).parent}")


@zoo_app.command("list")
def zoo_list(tiny: bool = False, cache_dir: Path | None = None) -> None:
    """Print the cards of the zoo members built so far, and where the zoo lives (the paths braids take)."""
    from braid.zoo.build import cards_table, load_cards, zoo_dir

    cards, root = load_cards(tiny, cache_dir), zoo_dir(tiny, cache_dir)
    if not cards:
        other = "" if tiny else " (or `braid zoo list --tiny` for the tiny zoo, which `make demo` builds)"
        console.print(
            f"no zoo members built yet in {root}: run `braid zoo build{' --tiny' if tiny else ''}`{other}"
        )
        return
    console.print(cards_table(cards))
    console.print(f"zoo: {root} (each member's directory is a model path for BraidedLLM)", soft_wrap=True)


@app.command()
def bench(
    smoke_test: bool = typer.Option(
        False, "--smoke-test", help="tiny zoo, one braid, a few steps; writes nothing"
    ),
    tiny: bool = typer.Option(False, help="use the tiny zoo"),
) -> None:
    """braid-bench: members vs braids on the zoo's domains (bench/quality.py), then the composition and
    KV-arithmetic tasks."""
    import importlib
    import sys

    root = Path(__file__).resolve().parent.parent
    if not (root / "bench" / "quality.py").exists():
        console.print(
            "[red]braid bench runs from a checkout of the repository (bench/ is not installed)[/red]"
        )
        raise typer.Exit(2)
    sys.path.insert(0, str(root))
    for name in ("bench.quality", "bench.composition", "bench.kv_arith"):
        importlib.import_module(name).run(smoke_test=smoke_test, tiny=tiny)


@app.command()
def demo(
    quick: bool = typer.Option(False, help="a smaller sweep and pretraining (CI)"),
    workdir: Path | None = typer.Option(None, help="default: $BRAID_CACHE/demo or ~/.cache/llm-braid/demo"),
    prepare: bool = typer.Option(
        False, help="only the zoo, sweep and meta-braider serve.yaml reads; no chats"
    ),
    verbose: bool = typer.Option(False, help="also show other libraries' log lines and warnings"),
    keep_serving: bool = typer.Option(False, help="keep the server (and its web page) up until Ctrl-C"),
) -> None:
    """The whole system: tiny zoo, a Tune sweep, meta-braider pretraining, Ray Serve, openai-client chats
    with memory and a tool call, feedback; prints answers, decisions, explanations and timings, then the
    web page's URL."""
    if prepare:
        from serve.demo import prepare as prepare_only

        prepare_only(quick=quick, workdir=workdir, verbose=verbose)
        return
    from serve.demo import main

    main(quick=quick, workdir=workdir, verbose=verbose, keep_serving=keep_serving)


@app.command()
def quickstart(steps: int = 200, strategy: str = "attention") -> None:
    """The braid core alone: train two small models here, braid them, train the fusion briefly, generate."""
    from braid.demo import main

    main(steps=steps, strategy=strategy)
