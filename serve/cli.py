"""``braid serve``: deploy the Serve app (Ray Serve, or uvicorn in-process with --no-ray) and block."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def serve_command(
    config: Path = typer.Option(
        Path("serve.yaml"), exists=True, dir_okay=False, help="Ray Serve or ServeConfig YAML"
    ),
    host: str | None = typer.Option(None, help="override the config's host"),
    port: int | None = typer.Option(None, help="override the config's port"),
    ray: bool = typer.Option(True, help="--no-ray: uvicorn in this process (no replicas, no autoscaling)"),
    address: str | None = typer.Option(None, help="Ray cluster address; default: start a local one"),
) -> None:
    """Serve the OpenAI-compatible endpoint (chat completions, models, decide, feedback, conversations)."""
    from pydantic import ValidationError

    from serve.config import ServeConfig

    try:  # the config is checked before Ray starts or a model loads
        cfg = ServeConfig.from_yaml(config)
        overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
        cfg = ServeConfig.model_validate({**cfg.model_dump(), **overrides}) if overrides else cfg
    except (ValidationError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None
    table = Table("setting", "value", title="braid serve")
    for key in ("host", "port", "meta_braider", "records", "default_model", "use_memory", "use_tools"):
        table.add_row(key, str(getattr(cfg, key)))
    table.add_row("auth", "API key" if cfg.api_key else "none (loopback only)")
    console.print(table)
    if ray:
        _serve_on_ray(cfg, address)
    else:
        _serve_here(cfg)


def _serve_on_ray(cfg, address: str | None) -> None:
    import ray as ray_

    from serve.app import run

    ray_.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    run(cfg)
    console.print(f"serving on http://{cfg.host}:{cfg.port}/v1 (Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        from ray import serve

        serve.shutdown()


def _serve_here(cfg) -> None:
    import uvicorn

    from serve.api import create_app
    from serve.build import build_coordinator

    coordinator = build_coordinator(cfg)
    uvicorn.run(create_app(lambda: coordinator, cfg), host=cfg.host, port=cfg.port, log_level="warning")
