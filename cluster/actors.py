"""The Ray actors of a braid: plain host classes, made remote by ``member_actor_class`` / ``fusion_actor``.

``MemberHost`` loads one member and serves it over the exchange channel (``cluster.member``). The
``RayRunner`` of the braid that owns it starts it, replaces it when it is lost and kills it on close.
``FusionHost`` is the fusion actor: a braid with ray placement held in an actor of its own, for a caller
that should not run the fusion itself (it belongs on another node, or on a GPU the caller lacks).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import torch

from braid.braided import BraidedLLM, load_member
from braid.config import BraidConfig, MemberConfig
from cluster.member import MemberServer
from cluster.placement import RayPlacement


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


class MemberHost:
    """One member served over the exchange channel. A saved braid's fusion runs here and its own members go
    in actors of their own (``placement_json``: the outer braid's placement, whose CPU share counted them)."""

    def __init__(self, spec_json: str, timeout: float, placement_json: str | None = None):
        import ray

        spec = MemberConfig.model_validate_json(spec_json)
        device = spec.device or ("cuda" if ray.get_gpu_ids() else None)
        placement = RayPlacement.model_validate_json(placement_json) if placement_json else None
        member = load_member(spec, device, placement)
        self.server = MemberServer(member, host=ray.util.get_node_ip_address(), timeout=timeout).start()

    def ready(self) -> dict[str, Any]:
        endpoint = (self.server.host, self.server.port)
        return {"endpoint": endpoint, "info": self.server.info(), "node_id": _node_id(), "pid": os.getpid()}

    def ping(self) -> bool:
        return True

    def requests(self) -> int:
        return self.server.requests

    def close(self) -> None:
        """Stop serving; a braid member closes its braid (its own member actors and placement group)."""
        self.server.close()
        self.server.member.close()

    def inner_members(self) -> list[dict[str, Any]]:
        """A braid member's own member actors (node and pid of each); none for a single model."""
        runner = getattr(getattr(self.server.member, "braid", None), "runner", None)
        if not hasattr(runner, "member_pids"):
            return []
        return [
            {"node_id": n, "pid": p} for n, p in zip(runner.member_nodes, runner.member_pids, strict=True)
        ]


@functools.cache
def member_actor_class() -> Any:
    import ray

    return ray.remote(MemberHost)


class FusionHost:
    """A braid (ray placement: its members in actors of their own) whose fusion runs in this actor."""

    def __init__(self, config_json: str, placement_json: str):
        config = BraidConfig.model_validate_json(config_json)
        placement = RayPlacement.model_validate_json(placement_json)
        self.braid = BraidedLLM(config=config, placement="ray", ray_placement=placement)

    def nodes(self) -> dict[str, Any]:
        return {"fusion_node": _node_id(), "member_nodes": list(self.braid.runner.member_nodes)}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.braid(input_ids, attention_mask=attention_mask).logits

    def generate(self, prompt: str, params: dict[str, Any]) -> Iterator[str]:
        """Text pieces as they are produced (call with ``num_returns="streaming"``)."""
        yield from self.braid.generate(prompt, stream=True, **params)

    def load_fusion(self, raw: bytes) -> None:
        """Fusion weights (a ``fusion.safetensors`` file's bytes) from the caller."""
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
            f.write(raw)
            f.flush()
            self.braid.load_fusion_layers(f.name)

    def close(self) -> None:
        self.braid.close()


def fusion_actor(config: BraidConfig, placement: RayPlacement | None = None, **options: Any) -> Any:
    """A ``FusionHost`` actor (``options``: Ray actor options, e.g. a scheduling strategy for its node)."""
    import ray

    host = ray.remote(max_restarts=0)(FusionHost).options(**options)
    return host.remote(config.model_dump_json(), (placement or RayPlacement()).model_dump_json())
