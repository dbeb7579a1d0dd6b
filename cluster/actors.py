"""The Ray actors of a braid replica: plain host classes here, made remote in ``cluster.braid``.

``MemberHost`` loads one member and serves it over the exchange channel. ``FusionHost`` (the leader) owns
the member actors, so it can replace one that dies, and the braid's lifetime bounds theirs.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator
from typing import Any

import torch

from braid.config import BraidConfig, MemberConfig
from cluster.placement import RayPlacement


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


class MemberHost:
    def __init__(self, spec_json: str, timeout: float):
        import ray

        from braid.model_wrapper import ModelWrapper
        from cluster.member import MemberServer

        spec = MemberConfig.model_validate_json(spec_json)
        device = spec.device or ("cuda" if ray.get_gpu_ids() else None)
        member = ModelWrapper(spec.model_name, spec.quantization, spec.dtype, device)
        self.server = MemberServer(member, host=ray.util.get_node_ip_address(), timeout=timeout).start()

    def ready(self) -> dict[str, Any]:
        endpoint = (self.server.host, self.server.port)
        return {"endpoint": endpoint, "info": self.server.info(), "node_id": _node_id(), "pid": os.getpid()}

    def ping(self) -> bool:
        return True

    def requests(self) -> int:
        return self.server.requests


class FusionHost:
    def __init__(self, config_json: str, placement_json: str, pg: Any, cluster_gpus: float):
        import ray

        from cluster.leader import leader_braid

        self.config = BraidConfig.model_validate_json(config_json)
        self.placement = RayPlacement.model_validate_json(placement_json)
        self.pg, self.cluster_gpus = pg, cluster_gpus
        deadline = time.monotonic() + self.placement.ready_timeout_s
        self.members = [self._start_member(m) for m in range(len(self.config.model_configs))]
        readies = ray.get([a.ready.remote() for a in self.members], timeout=_left(deadline))
        self.member_nodes = [r["node_id"] for r in readies]
        device = "cuda" if ray.get_gpu_ids() else "cpu"
        self.braid = leader_braid(
            self.config, [tuple(r["endpoint"]) for r in readies], [r["info"] for r in readies], device,
            timeout=self.placement.exchange_timeout_s, recovery_timeout=self.placement.recovery_timeout_s,
            replace_members=self._replace,
        )  # fmt: skip

    def _start_member(self, m: int) -> Any:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        spec = self.config.model_configs[m]
        return (
            member_actor_class()
            .options(
                num_cpus=self.placement.cpus_per_member,
                num_gpus=self.placement.member_gpus(self.cluster_gpus),
                scheduling_strategy=PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=m),
                name=None,
            )
            .remote(spec.model_dump_json(), self.placement.exchange_timeout_s)
        )

    def _replace(self, lost: set[int], deadline: float) -> list[tuple[str, int]]:
        """Endpoints of live members: each lost or unresponsive one is killed and started again in its bundle."""
        import ray

        endpoints: list[tuple[str, int]] = []
        for m, actor in enumerate(self.members):
            if m not in lost:
                try:
                    ready = ray.get(actor.ready.remote(), timeout=min(5.0, _left(deadline)))
                    endpoints.append(tuple(ready["endpoint"]))
                    continue
                except (ray.exceptions.RayError, TimeoutError):
                    pass
            ray.kill(actor)
            self.members[m] = self._start_member(m)
            ready = ray.get(self.members[m].ready.remote(), timeout=_left(deadline))
            self.member_nodes[m] = ready["node_id"]
            endpoints.append(tuple(ready["endpoint"]))
        return endpoints

    # -- the work -----------------------------------------------------------------------------------------
    def ready(self) -> dict[str, Any]:
        return {"fusion_node": _node_id(), "member_nodes": self.member_nodes}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, labels: Any) -> tuple:
        out = self.braid.forward(input_ids, attention_mask=attention_mask, labels=labels)
        return out.logits, out.loss

    def generate(self, prompt: str, params: dict[str, Any]) -> Iterator[str]:
        yield from self.braid.generate(prompt, stream=True, **params)

    @torch.no_grad()
    def decode_seconds(self, prompt_ids: torch.Tensor, tokens: list[int]) -> float:
        """Seconds per token to feed ``tokens`` after the prompt (a fixed stream, so runs compare exactly)."""
        from braid.generation import BraidSession

        session = BraidSession(self.braid)
        session.feed(prompt_ids)
        start = time.perf_counter()
        for t in tokens:
            session.feed(torch.tensor([[t]]))
        return (time.perf_counter() - start) / max(len(tokens), 1)

    def fusion_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        state = {k: v.detach().cpu() for k, v in self.braid.fusion_modules.state_dict().items()}
        return state, self.braid.fusion_signature()

    def load_fusion(self, raw: bytes) -> None:
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
            f.write(raw)
            f.flush()
            self.braid.load_fusion_layers(f.name)

    def ping(self) -> bool:
        return True

    def member_handles(self) -> list[Any]:
        return list(self.members)

    def recoveries(self) -> int:
        return self.braid.runner.recoveries

    def shutdown(self) -> None:
        import ray

        self.braid.close()
        for actor in self.members:
            ray.kill(actor)


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the deadline passed")
    return left


@functools.cache
def member_actor_class() -> Any:
    import ray

    return ray.remote(MemberHost)


@functools.cache
def fusion_actor_class() -> Any:
    import ray

    return ray.remote(max_restarts=0)(FusionHost)
