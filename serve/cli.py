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
    keys = (
        "host",
        "port",
        "meta_braider",
        "records",
        "default_model",
        "use_memory",
        "use_tools",
        "direct_ingress",
    )
    for key in keys:
        table.add_row(key, str(getattr(cfg, key)))
    table.add_row("auth", "API key" if cfg.api_key else "none (loopback only)")
    console.print(table)
    if ray:
        _serve_on_ray(cfg, address)
    else:
        _serve_here(cfg)


def _serve_on_ray(cfg, address: str | None) -> None:
    import ray as ray_

    from serve.app import direct_urls, enable_direct_ingress, run

    if cfg.direct_ingress and address is None:  # a Ray we start: its Serve must know before it starts
        enable_direct_ingress()
    ray_.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    run(cfg)
    urls = [f"http://{cfg.host}:{cfg.port}"] + (direct_urls(cfg) if cfg.direct_ingress else [])
    table = Table("endpoint", "base URL", title="serving (Ctrl-C stops)")
    for i, url in enumerate(urls):
        table.add_row("Serve proxy" if i == 0 else f"gateway replica {i} (direct)", url + "/v1")
    table.add_row("web page", urls[0] + "/")
    console.print(table, soft_wrap=True)
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
    from serve.local import header_deadline_protocol

    coordinator = build_coordinator(cfg)
    console.print(
        f"serving on http://{cfg.host}:{cfg.port}/v1 (uvicorn in this process; Ctrl-C stops)\n"
        f"web page: http://{cfg.host}:{cfg.port}/",
        soft_wrap=True,
    )
    uvicorn.run(create_app(coordinator, cfg), host=cfg.host, port=cfg.port, log_level="warning",
                http=header_deadline_protocol())  # fmt: skip
