"""How a braid's members are placed on a Ray cluster: one placement group, one bundle per member. (The
fusion runs in the process that owns the braid, which Ray already placed: a Serve replica, a Train worker,
a ``FusionHost`` actor, or the driver.)

CPUs left unset are the cluster's shared evenly (at most one each), one share left for the process that
owns the braid: on a 2-CPU machine a 2-member braid takes 0.66 CPU per bundle instead of waiting for a CPU
that never comes. Bundles that cannot fit the
cluster as it is (in all, or on one node for STRICT_PACK) are an error at once, naming what is missing.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Strategy = Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"]


class RayPlacement(BaseModel):
    """``gpus_per_member=None`` means one GPU per member when the cluster has GPUs, none otherwise;
    ``cpus_per_member`` None shares the cluster's CPUs evenly, at most 1 each (``resolved``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    strategy: Strategy = "PACK"
    cpus_per_member: float | None = Field(default=None, ge=0)
    gpus_per_member: float | None = Field(default=None, ge=0)
    exchange_timeout_s: float = Field(default=60.0, gt=0)  # every wait on the channel
    recovery_timeout_s: float = Field(default=180.0, gt=0)  # replacing a lost member, weights included
    ready_timeout_s: float = Field(default=600.0, gt=0)  # placing the group and loading the members

    def member_gpus(self, cluster_gpus: float) -> float:
        if self.gpus_per_member is not None:
            return self.gpus_per_member
        return 1.0 if cluster_gpus > 0 else 0.0

    def resolved(self, num_members: int, cluster_cpus: float) -> RayPlacement:
        """This placement with unset CPUs filled in: the cluster's CPUs over the members and the braid's
        owner, at most 1 each."""
        if self.cpus_per_member is not None:
            return self
        share = max(0.01, min(1.0, math.floor(100 * cluster_cpus / (num_members + 1)) / 100))
        return self.model_copy(update={"cpus_per_member": share})

    def bundles(self, num_members: int, cluster_gpus: float) -> list[dict[str, float]]:
        if self.cpus_per_member is None:
            raise ValueError("resolve the placement against the cluster first (RayPlacement.resolved)")
        member = {"CPU": self.cpus_per_member, "GPU": self.member_gpus(cluster_gpus)}
        return [{k: v for k, v in member.items() if v > 0} or {"CPU": 0.01}] * num_members

    def check_fits(self, bundles: list[dict[str, float]], nodes: list[dict[str, float]]) -> None:
        """RuntimeError at once when ``bundles`` cannot fit ``nodes`` (each node's total resources) under
        this strategy, naming what is missing; placing them would otherwise wait ``ready_timeout_s``."""
        head = f"cannot place the braid: {len(bundles)} bundles {bundles}"
        for key in sorted({k for b in bundles for k in b}):
            need, have = sum(b.get(key, 0.0) for b in bundles), sum(n.get(key, 0.0) for n in nodes)
            if need > have + 1e-9:
                fix = "cpus_per_member (unset, members share the cluster's CPUs)" if key == "CPU" else (
                    "gpus_per_member" if key == "GPU" else f"the {key} asked for"
                )  # fmt: skip
                raise RuntimeError(
                    f"{head} need {need:g} {key} in all; the cluster has {have:g}: lower {fix}"
                )
        if self.strategy == "STRICT_PACK":
            for key in sorted({k for b in bundles for k in b}):
                need, most = (
                    sum(b.get(key, 0.0) for b in bundles),
                    max((n.get(key, 0.0) for n in nodes), default=0),
                )
                if need > most + 1e-9:
                    raise RuntimeError(
                        f"{head} need {need:g} {key} on one node (STRICT_PACK); the largest has {most:g}"
                    )
        if self.strategy == "STRICT_SPREAD" and len(bundles) > len(nodes):
            raise RuntimeError(f"{head} need one node each (STRICT_SPREAD); the cluster has {len(nodes)}")
