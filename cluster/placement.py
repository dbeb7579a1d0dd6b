"""How a braid replica is placed on a Ray cluster: one placement group, one bundle per member plus one for
the fusion actor (the last bundle).

CPUs left unset are the cluster's shared evenly (at most one each): on a 2-CPU machine a 2-member braid
takes 0.66 CPU per bundle instead of waiting for a third CPU that never comes. Bundles that cannot fit the
cluster as it is (in all, or on one node for STRICT_PACK) are an error at once, naming what is missing.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Strategy = Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"]


class RayPlacement(BaseModel):
    """``gpus_per_member=None`` means one GPU per member when the cluster has GPUs, none otherwise;
    ``cpus_per_member`` / ``fusion_cpus`` None share the cluster's CPUs evenly, at most 1 each (``resolved``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    strategy: Strategy = "PACK"
    cpus_per_member: float | None = Field(default=None, ge=0)
    gpus_per_member: float | None = Field(default=None, ge=0)
    fusion_cpus: float | None = Field(default=None, ge=0)
    fusion_gpus: float = Field(default=0.0, ge=0)
    exchange_timeout_s: float = Field(default=60.0, gt=0)  # every wait on the channel
    recovery_timeout_s: float = Field(default=180.0, gt=0)  # replacing a lost member, weights included
    ready_timeout_s: float = Field(default=600.0, gt=0)  # placing the group and loading the members
    stream_buffer: int | None = Field(default=None, ge=1)  # text pieces the leader may run ahead of a reader

    def member_gpus(self, cluster_gpus: float) -> float:
        if self.gpus_per_member is not None:
            return self.gpus_per_member
        return 1.0 if cluster_gpus > 0 else 0.0

    def resolved(self, num_members: int, cluster_cpus: float) -> RayPlacement:
        """This placement with unset CPUs filled in: the cluster's CPUs over the bundles, at most 1 each."""
        share = max(0.01, min(1.0, math.floor(100 * cluster_cpus / (num_members + 1)) / 100))
        return self.model_copy(
            update={
                "cpus_per_member": share if self.cpus_per_member is None else self.cpus_per_member,
                "fusion_cpus": share if self.fusion_cpus is None else self.fusion_cpus,
            }
        )

    def bundles(self, num_members: int, cluster_gpus: float) -> list[dict[str, float]]:
        if self.cpus_per_member is None or self.fusion_cpus is None:
            raise ValueError("resolve the placement against the cluster first (RayPlacement.resolved)")
        member = {"CPU": self.cpus_per_member, "GPU": self.member_gpus(cluster_gpus)}
        fusion = {"CPU": self.fusion_cpus, "GPU": self.fusion_gpus}
        return [
            {k: v for k, v in b.items() if v > 0} or {"CPU": 0.01} for b in [member] * num_members + [fusion]
        ]

    def check_fits(self, bundles: list[dict[str, float]], nodes: list[dict[str, float]]) -> None:
        """RuntimeError at once when ``bundles`` cannot fit ``nodes`` (each node's total resources) under
        this strategy, naming what is missing; placing them would otherwise wait ``ready_timeout_s``."""
        head = f"cannot place the braid: {len(bundles)} bundles {bundles}"
        for key in sorted({k for b in bundles for k in b}):
            need, have = sum(b.get(key, 0.0) for b in bundles), sum(n.get(key, 0.0) for n in nodes)
            if need > have + 1e-9:
                fix = "cpus_per_member / fusion_cpus (unset, they share the cluster's CPUs)" if key == "CPU" else (
                    "gpus_per_member / fusion_gpus" if key == "GPU" else f"the {key} asked for"
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
