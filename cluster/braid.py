"""Ray placement: each member in its own Ray actor, reached over TCP channels by the braid that owns them.

``BraidedLLM(..., placement="ray")`` calls ``ray_members``: one placement group (a bundle per member), one
``MemberHost`` actor per bundle, and a ``RayRunner`` (a ``ChannelRunner`` that also owns the actors, so it
can replace one that dies). The result is a plain ``BraidedLLM``: its fusion modules and generation loop run
in the process that built it (the driver, a Serve replica, a Ray Train worker, or a ``FusionHost`` actor of
its own), and hidden states cross the channels, never Ray's object store. No Ray call is made per request.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import torch

from braid.config import BraidConfig
from cluster.actors import member_actor_class
from cluster.leader import ChannelRunner, Endpoint, RemoteMember
from cluster.placement import RayPlacement


def ray_members(
    config: BraidConfig, placement: RayPlacement | None = None
) -> tuple[list[RemoteMember], RayRunner]:
    """The stand-in members and the runner of a braid whose members are Ray actors (``braid.runner``'s
    ``PLACEMENTS["ray"]``). The fusion runs on this process's GPU when it has one."""
    runner = RayRunner(config, placement)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    members = [RemoteMember(s, i, device) for s, i in zip(config.model_configs, runner.infos, strict=True)]
    return members, runner


def wait_placed(pg: Any, bundles: list[dict[str, float]], timeout_s: float) -> bool:
    """Wait for a placement group that fits the cluster but not yet its free resources (other work holds
    them), saying so every 30 s rather than waiting in silence."""
    import ray

    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        ready, _ = ray.wait([pg.ready()], timeout=min(30.0, left))
        if ready:
            return True
        logging.getLogger(__name__).warning(
            "waiting for free resources for the braid's bundles %s (%.0fs left of ready_timeout_s)",
            bundles,
            left,
        )
    return False


class RayRunner(ChannelRunner):
    """A ``ChannelRunner`` over member actors it places, starts, replaces when lost and kills on ``close``."""

    def __init__(self, config: BraidConfig, placement: RayPlacement | None = None):
        import ray

        if not ray.is_initialized():
            ray.init(configure_logging=False, log_to_driver=False)
        self.config, self.members, self.pg = config, [], None
        self.cluster_gpus = ray.cluster_resources().get("GPU", 0.0)
        self.placement = self._place(placement or RayPlacement())
        try:
            readies = self._start_all()
        except BaseException:
            self.close()
            raise
        self.member_nodes = [r["node_id"] for r in readies]
        self.member_pids = [r["pid"] for r in readies]
        self.infos = [r["info"] for r in readies]
        endpoints = [tuple(r["endpoint"]) for r in readies]
        p = self.placement
        super().__init__(endpoints, p.exchange_timeout_s, p.recovery_timeout_s, self._replace)

    def _place(self, placement: RayPlacement) -> RayPlacement:
        """Resolve the placement against the cluster and create its placement group, or fail naming why."""
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group

        n = len(self.config.model_configs)
        placement = placement.resolved(actor_count(self.config), ray.cluster_resources().get("CPU", 0.0))
        bundles = placement.bundles(n, self.cluster_gpus)
        placement.check_fits(bundles, [node["Resources"] for node in ray.nodes() if node.get("Alive")])
        pg = placement_group(bundles, strategy=placement.strategy)
        if not wait_placed(pg, bundles, placement.ready_timeout_s):
            remove_placement_group(pg)
            raise RuntimeError(
                f"cannot place the braid: {len(bundles)} bundles {bundles} with strategy "
                f"{placement.strategy} did not fit within {placement.ready_timeout_s:g}s "
                f"(cluster resources: {ray.cluster_resources()})"
            )
        self.pg = pg
        return placement

    def _start_all(self) -> list[dict[str, Any]]:
        import ray

        self.members = [self._start_member(m) for m in range(len(self.config.model_configs))]
        return ray.get([a.ready.remote() for a in self.members], timeout=self.placement.ready_timeout_s)

    def _start_member(self, m: int) -> Any:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        strategy = PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=m)
        return (
            member_actor_class()
            .options(
                num_cpus=self.placement.cpus_per_member,
                num_gpus=self.placement.member_gpus(self.cluster_gpus),
                scheduling_strategy=strategy,
            )
            .remote(
                self.config.model_configs[m].model_dump_json(),
                self.placement.exchange_timeout_s,
                self.placement.model_dump_json(),
            )
        )

    def _replace(self, lost: set[int], deadline: float) -> list[Endpoint]:
        """Endpoints of live members: each lost or unresponsive one is killed and started again in its bundle."""
        import ray

        endpoints: list[Endpoint] = []
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
            self.member_nodes[m], self.member_pids[m] = ready["node_id"], ready["pid"]
            endpoints.append(tuple(ready["endpoint"]))
        return endpoints

    def member_handles(self) -> list[Any]:
        return list(self.members)

    def close(self) -> None:
        """Say goodbye on every channel, kill the member actors and free the placement group; safe twice."""
        import ray
        from ray.util.placement_group import remove_placement_group

        if getattr(self, "links", None) is not None:
            super().close()
        # a braid member's actor owns actors and a placement group of its own: let it free them first
        with contextlib.suppress(Exception):
            ray.get([actor.close.remote() for actor in self.members], timeout=30)
        for actor in self.members:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self.members = []
        if self.pg is not None:
            remove_placement_group(self.pg)
            self.pg = None


def actor_count(config: BraidConfig) -> int:
    """The member actors a braid starts: one per member, and a braid member's own, recursively (each inner
    braid's members run in actors of their own)."""
    from braid.checkpoint import read_config
    from braid.config import is_saved_braid

    return sum(
        1 + (actor_count(read_config(m.model_name)) if is_saved_braid(m.model_name) else 0)
        for m in config.model_configs
    )


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the deadline passed")
    return left
