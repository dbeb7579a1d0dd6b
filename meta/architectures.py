"""Searched fusion architectures the meta-braider deploys (``tune.arch``).

The meta-braider chooses on the sweep's grid (anchor, members, strategy, points, placement, width). A
searched architecture refines one grid configuration (same members, anchor, strategy and point count; its
own blocks, source layers and per-point widths and members), so it is learned as that configuration: its
record becomes an observation of its grid projection, and the library remembers, per task type and
projection, the best searched architecture measured. A decision for a task of that type then builds the
architecture (``BraidingDecision.architecture``), which is what the observation's score was measured on.

The gateway serves such a decision under its grid key plus ``@`` and a digest of the architecture
(``architecture_key``), so any replica holding the agent's checkpoint builds the same braid from the key alone.
"""

from __future__ import annotations

import hashlib
from typing import Any

from braid.spec import BraidSpec, place_layers
from tune.space import BraidChoice

PLACEMENTS = ("spread", "early", "late")  # the order ties are broken in


def is_searched(choice: Any) -> bool:
    """A record's configuration came from the architecture search (it has a layer map or point archs)."""
    return getattr(choice, "layer_map", None) is not None or getattr(choice, "points", None) is not None


def grid_projection(choice: BraidChoice, anchor_depth: int) -> BraidSpec:
    """The grid configuration a searched architecture refines: its members, anchor, strategy, point count
    and width (the output head's, else the first point's), at the placement whose blocks lie nearest its own."""
    n = max(1, len(choice.fusion_layers))

    def distance(placement: str) -> int:
        placed = place_layers(anchor_depth, n, placement)
        return sum(abs(a - b) for a, b in zip(placed, choice.fusion_layers, strict=False))

    placement = min(PLACEMENTS, key=distance) if choice.fusion_layers else "spread"
    return BraidSpec(
        members=choice.members, anchor=choice.anchor, strategy=choice.strategy, fusion_points=n,
        placement=placement, fusion_dim=choice.fusion_dim, strategy_params=choice.strategy_params,
    )  # fmt: skip


def architecture_key(spec_key: str, choice: BraidChoice) -> str:
    """The gateway's key for a searched architecture refining the grid configuration ``spec_key``: that key,
    ``@``, and the first 12 hex digits of the architecture's SHA-256 (over its JSON, so stable across processes)."""
    digest = hashlib.sha256(choice.model_dump_json().encode()).hexdigest()[:12]
    return f"{spec_key}@{digest}"


class ArchitectureLibrary:
    """Per (task type, grid configuration key): the best searched architecture measured, and its score."""

    def __init__(self) -> None:
        self.best: dict[str, tuple[float, BraidChoice]] = {}

    @staticmethod
    def _key(task_type: str, spec_key: str) -> str:
        return f"{task_type}|{spec_key}"

    def add(self, task_type: str, spec_key: str, choice: BraidChoice, score: float) -> None:
        key = self._key(task_type, spec_key)
        if key not in self.best or score > self.best[key][0]:
            self.best[key] = (score, choice)

    def get(self, task_type: str, spec_key: str) -> BraidChoice | None:
        found = self.best.get(self._key(task_type, spec_key))
        return None if found is None else found[1]

    def by_key(self, key: str) -> BraidChoice | None:
        """The architecture an ``architecture_key`` names, or None (a grid key, or one this library lacks)."""
        found = (c for k, (_, c) in self.best.items() if architecture_key(k.split("|", 1)[1], c) == key)
        return next(found, None) if "@" in key else None

    def __len__(self) -> int:
        return len(self.best)

    def state(self) -> dict[str, Any]:
        return {k: {"score": s, "choice": c.model_dump(mode="json")} for k, (s, c) in self.best.items()}

    def restore(self, state: dict[str, Any]) -> None:
        self.best = {k: (v["score"], BraidChoice.model_validate(v["choice"])) for k, v in state.items()}
