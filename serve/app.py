"""The Ray Serve application: a FastAPI ingress (``Gateway``: the Coordinator with memory, tools and the
meta-braider) in front of a braid deployment (``BraidHost``: one replica = one braid, in its own
placement-group bundle, autoscaled).

The meta-braider's choice for a request is a braid key; the gateway sends it as the multiplexed model id, so
Serve routes the request to a replica that already holds that braid, and a replica builds (and LRU-evicts)
braids by key. With ``deployment.colocate`` the gateway's own replicas hold the braids instead (one hop
fewer, autoscaled with the braid settings). ``serve run serve.yaml`` / ``serve deploy serve.yaml`` call
:func:`app_builder` with the config's ``args`` validated as a ServeConfig.
"""

# no `from __future__ import annotations` here: Serve reads app_builder's annotation as a class to validate
# the config's args with it
import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ray import serve
from ray.serve import Application

from braid.sampling import SamplingParams
from serve.braids import Generated
from serve.config import ServeConfig

log = logging.getLogger(__name__)


class BraidHost:
    """A braid replica: builds braids by key (pinned name or decision structure) and generates with them."""

    def __init__(self, config: ServeConfig):
        import torch

        from serve.braids import LocalBraids
        from serve.build import braid_factory

        torch.set_num_threads(max(1, int(config.deployment.replica_cpus)))
        self.braids = LocalBraids(braid_factory(config), capacity=config.deployment.braids_per_replica)

        async def build(key: str) -> str:  # a plain function: Serve keeps its LRU state on the loader
            await asyncio.to_thread(self.braids.get, key)
            return key

        self.load = serve.multiplexed(max_num_models_per_replica=config.deployment.braids_per_replica)(build)

    async def generate(self, prompt: str, params: dict) -> dict:
        key = await self.load(serve.get_multiplexed_model_id())
        out = await asyncio.to_thread(self.braids.generate, key, prompt, SamplingParams(**params))
        return out.model_dump()

    async def stream(self, prompt: str, params: dict) -> AsyncIterator[str]:
        key = await self.load(serve.get_multiplexed_model_id())
        pieces = self.braids.stream(key, prompt, SamplingParams(**params))
        done = object()
        while (piece := await asyncio.to_thread(next, pieces, done)) is not done:
            yield piece


class ServeBraids:
    """The gateway's view of BraidHost: the LocalBraids interface over a deployment handle."""

    def __init__(self, handle: Any, pinned: dict[str, str], checker: Any = None):
        self.handle, self.pinned, self.checker = handle, pinned, checker

    def known(self, key: str) -> bool:
        return key in self.pinned or "|" in key

    def pinned_names(self) -> list[str]:
        return sorted(self.pinned)

    def planner_context(self, key: str) -> None:
        return None  # the braid is in a BraidHost replica: the tool planner follows its rules

    def check(self, key: str) -> None:
        """The gateway checks client-named structures (``BraidFactory.check``) before a replica builds one."""
        if self.checker is not None:
            self.checker.check(key)

    def generate(self, key: str, prompt: str, params: SamplingParams) -> Generated:
        response = self.handle.options(multiplexed_model_id=key).generate.remote(prompt, params.model_dump())
        return Generated(**response.result())

    def stream(self, key: str, prompt: str, params: SamplingParams) -> Iterator[str]:
        handle = self.handle.options(multiplexed_model_id=key, stream=True)
        yield from handle.stream.remote(prompt, params.model_dump())


class Gateway:
    """The ingress replica: the Coordinator, with braids behind a BraidHost handle, or in this process when
    ``deployment.colocate`` (no BraidHost). Serve asks it for its HTTP app once it is built
    (``__serve_build_asgi_app__``), so the app holds this replica's coordinator."""

    def __init__(self, config: ServeConfig, braid_host: Any = None):
        from serve.build import build_coordinator

        self.config = config
        if braid_host is None:
            import torch

            torch.set_num_threads(max(1, int(config.deployment.replica_cpus)))
            self.coordinator = build_coordinator(config)
        else:
            from serve.build import braid_factory

            braids = ServeBraids(braid_host, dict(config.braids))
            self.coordinator = build_coordinator(config, braids)
            braids.checker = braid_factory(
                config, self.coordinator.meta
            )  # the agent already loaded, its grid

    def __serve_build_asgi_app__(self) -> Any:
        from serve.api import create_app

        return create_app(self.coordinator, self.config)


def app_builder(args: ServeConfig) -> Application:
    """The application for a ServeConfig (typed: ``serve run`` validates the YAML's args against it)."""
    d = args.deployment
    braid_replicas = dict(
        ray_actor_options={"num_cpus": d.replica_cpus, "num_gpus": d.replica_gpus},
        placement_group_bundles=[
            {"CPU": d.replica_cpus, **({"GPU": d.replica_gpus} if d.replica_gpus else {})}
        ],
        placement_group_strategy="STRICT_PACK",
        autoscaling_config={
            "min_replicas": d.min_replicas,
            "max_replicas": d.max_replicas,
            "target_ongoing_requests": d.target_ongoing_requests,
        },  # fmt: skip
        max_ongoing_requests=d.max_ongoing_requests,
    )
    ingress = serve.ingress()(Gateway)
    if d.colocate:
        return serve.deployment(ingress, name="Gateway", **braid_replicas).bind(args)
    host = serve.deployment(BraidHost, name="BraidHost", **braid_replicas)
    gateway = serve.deployment(
        ingress, name="Gateway", ray_actor_options={"num_cpus": args.ingress_cpus}, max_ongoing_requests=256
    )
    return gateway.bind(args, host.bind(args))


def run(config: ServeConfig, blocking: bool = False, name: str = "braid") -> Any:
    """Start Ray (local unless connected) and Serve on config.host:config.port, and deploy the app."""
    import ray

    if not ray.is_initialized():
        if config.direct_ingress:
            enable_direct_ingress()
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    serve.start(http_options={"host": config.host, "port": config.port})
    handle = serve.run(app_builder(config), name=name, route_prefix="/", blocking=blocking)
    if config.direct_ingress and not direct_urls(config, name):
        log.warning(
            "direct_ingress is set but this Ray cluster's Serve was started without "
            "RAY_SERVE_ENABLE_DIRECT_INGRESS=1: requests go through the proxy on port %d only",
            config.port,
        )
    return handle


# Ray Serve reads these in its controller and replicas, so they must be set before Ray starts. A local braid
# serve has no external load balancer to drain, hence a short draining period (Ray's default is 30 s).
DIRECT_INGRESS_ENV = {
    "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
}


def enable_direct_ingress() -> None:
    """Let ingress replicas listen on their own ports; call before a local ``ray.init`` (keeps set values)."""
    for key, value in DIRECT_INGRESS_ENV.items():
        os.environ.setdefault(key, value)


def direct_urls(config: ServeConfig, name: str = "braid") -> list[str]:
    """Base URLs of the app's gateway replicas' own HTTP servers (direct ingress); empty without it."""
    from ray.serve.context import _get_global_client  # Serve's instance details list the targets

    groups = _get_global_client().get_serve_details().get("target_groups", [])
    urls = []
    for group in groups:
        protocol = getattr(group["protocol"], "value", group["protocol"])
        if group.get("app_name") != name or protocol != "HTTP":
            continue
        for target in group["targets"]:
            if target["name"].startswith("SERVE_REPLICA"):  # not a proxy
                host = target["ip"] if config.host in ("0.0.0.0", "::") else config.host
                urls.append(f"http://{host}:{target['port']}{group['route_prefix'].rstrip('/')}")
    return urls
