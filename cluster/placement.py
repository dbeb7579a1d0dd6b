"""How a braid replica is placed on a Ray cluster: one placement group, one bundle per member plus one for
the fusion actor (the last bundle)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Strategy = Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"]


class RayPlacement(BaseModel):
    """``gpus_per_member=None`` means one GPU per member when the cluster has GPUs, none otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    strategy: Strategy = "PACK"
    cpus_per_member: float = Field(default=1.0, ge=0)
    gpus_per_member: float | None = Field(default=None, ge=0)
    fusion_cpus: float = Field(default=1.0, ge=0)
    fusion_gpus: float = Field(default=0.0, ge=0)
    exchange_timeout_s: float = Field(default=60.0, gt=0)  # every wait on the channel
    recovery_timeout_s: float = Field(default=180.0, gt=0)  # replacing a lost member, weights included
    ready_timeout_s: float = Field(default=600.0, gt=0)  # placing the group and loading the members
    stream_buffer: int | None = Field(default=None, ge=1)  # text pieces the leader may run ahead of a reader

    def member_gpus(self, cluster_gpus: float) -> float:
        if self.gpus_per_member is not None:
            return self.gpus_per_member
        return 1.0 if cluster_gpus > 0 else 0.0

    def bundles(self, num_members: int, cluster_gpus: float) -> list[dict[str, float]]:
        member = {"CPU": self.cpus_per_member, "GPU": self.member_gpus(cluster_gpus)}
        fusion = {"CPU": self.fusion_cpus, "GPU": self.fusion_gpus}
        return [
            {k: v for k, v in b.items() if v > 0} or {"CPU": 0.01} for b in [member] * num_members + [fusion]
        ]
