"""The search space: which members (and which anchor), where to fuse, how, and with which parameters.

Built from the fusion registry and a model pool; YAML narrows or extends it. Member subsets and anchors are one
categorical ("anchor|a,b") and fusion layers are (count, placement) resolved against the anchor's depth, so every
parameter has a fixed set of choices, which TPE needs.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from braid.spec import BraidSpec, Placement, TrainSpec, members_key, parse_members_key, strategy_layers


class SearchSpace(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    pool: tuple[str, ...] | None = Field(
        None, description="model names to draw from; default: the whole pool"
    )
    min_members: int = Field(2, ge=2)
    max_members: int = Field(2, ge=2)
    anchors: tuple[str, ...] | None = Field(
        None, description="allowed anchors; default: any member of the subset"
    )
    fusion_points: tuple[int, ...] = (1, 2)
    placements: tuple[Placement, ...] = ("early", "spread", "late")
    strategies: tuple[str, ...] | None = Field(
        None, description="default: every registered strategy of either level; 'a+b' combines two levels"
    )
    fusion_dims: tuple[int, ...] = (8, 16, 32)
    lr: tuple[float, float] = (3e-4, 1e-2)
    steps: tuple[int, ...] = (20, 40)
    temperature: tuple[float, float] = (0.0, 0.8)

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        from braid.fusion import split_strategy

        for name in v or ():
            split_strategy(name)  # raises naming the valid strategies
        return v

    @model_validator(mode="after")
    def _ranges(self) -> SearchSpace:
        if self.min_members > self.max_members:
            raise ValueError(f"min_members ({self.min_members}) > max_members ({self.max_members})")
        for name, (lo, hi) in (("lr", self.lr), ("temperature", self.temperature)):
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} range must satisfy 0 <= low <= high, got {(lo, hi)}")
        if self.lr[0] <= 0:
            raise ValueError("lr range must be positive (it is sampled log-uniformly)")
        if not self.fusion_points or min(self.fusion_points) < 1:
            raise ValueError("fusion_points must be positive counts")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.model_validate(data.get("space", data))

    def braids(self, pool: list[str]) -> list[str]:
        """Every allowed (anchor, members) as 'anchor|m1,m2' (members sorted, anchor among them)."""
        names = list(self.pool or pool)
        if missing := sorted(set(names) - set(pool)):
            raise ValueError(f"search space names models not in the pool: {missing}; pool: {sorted(pool)}")
        out = []
        for k in range(self.min_members, min(self.max_members, len(names)) + 1):
            for group in itertools.combinations(sorted(names), k):
                out += [members_key(a, group) for a in group if self.anchors is None or a in self.anchors]
        if not out:
            raise ValueError("the search space allows no braid (check pool, member counts and anchors)")
        return out

    def strategy_choices(self) -> tuple[str, ...]:
        """The strategies searched: those named, or every registered one of either level."""
        from braid.fusion import strategy_names

        return tuple(self.strategies or strategy_names())

    def param_space(self, pool: list[str]) -> dict[str, Any]:
        """Ray Tune's param_space (OptunaSearch converts it; random search samples it)."""
        from ray import tune

        return {
            "braid": tune.choice(self.braids(pool)),
            "fusion_points": tune.choice(list(self.fusion_points)),
            "placement": tune.choice(list(self.placements)),
            "strategy": tune.choice(list(self.strategy_choices())),
            "fusion_dim": tune.choice(list(self.fusion_dims)),
            "lr": tune.loguniform(*self.lr),
            "steps": tune.choice(list(self.steps)),
            "temperature": tune.uniform(*self.temperature) if self.temperature[1] > 0 else 0.0,
        }


class PointArch(BaseModel):
    """One hidden fusion point's own architecture in a searched braid (``braid.config.FusionPoint`` with
    member names, so a record reads without the pool's order): its strategy, width and the members that take
    part (the anchor always does). Unset: the braid's."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    strategy: str | None = None
    fusion_dim: int | None = Field(None, ge=1)
    members: tuple[str, ...] | None = None


class BraidChoice(TrainSpec, BraidSpec):  # fields: the braid's, then its training's
    """One sampled configuration, resolved against the pool: the braid (a ``BraidSpec``), how it is trained
    and sampled (a ``TrainSpec``), and the anchor blocks its fusion points landed on. A searched architecture
    (``tune.arch``) adds each member's source block per point (``layer_map``, by member name) and each
    point's own architecture (``points``); grid trials leave both unset (proportional source blocks, one
    architecture for every point)."""

    fusion_layers: tuple[int, ...]
    layer_map: dict[str, tuple[int, ...]] | None = None
    points: tuple[PointArch, ...] | None = None

    @model_validator(mode="after")
    def _architecture(self) -> BraidChoice:
        n = len(self.fusion_layers)
        if self.points is not None and len(self.points) != n:
            raise ValueError(f"points has {len(self.points)} entries for {n} fusion layers")
        for m, layers in (self.layer_map or {}).items():
            if m not in self.members or m == self.anchor or len(layers) != n:
                raise ValueError(f"layer_map[{m!r}] must name a non-anchor member with one layer per point")
        for p in self.points or ():
            if p.members is not None and (self.anchor not in p.members or set(p.members) - set(self.members)):
                raise ValueError(f"a point's members {p.members} must be braid members including the anchor")
        return self

    def architecture_fields(self) -> dict[str, Any]:
        """``BraidConfig``'s fusion_layers, layer_map and points for this choice, members indexed in
        ``ordered_members()`` order (the anchor at 0)."""
        order = self.ordered_members()
        layer_map = {order.index(m): list(v) for m, v in self.layer_map.items()} if self.layer_map else None
        points = None
        if self.points:
            points = [
                {"strategy": p.strategy, "fusion_dim": p.fusion_dim,
                 "members": None if p.members is None else sorted(order.index(m) for m in p.members)}
                for p in self.points
            ]  # fmt: skip
        return {"fusion_layers": list(self.fusion_layers), "layer_map": layer_map, "points": points}

    def to_config(self, paths: dict[str, str]):
        """The BraidConfig of this choice as resolved (its fusion layers, and a searched architecture's
        source layers and point architectures), over the members' paths."""
        from braid.config import BraidConfig

        if missing := sorted(set(self.members) - set(paths)):
            raise ValueError(f"no path for members {missing}; known: {sorted(paths)}")
        return BraidConfig(
            model_configs=[paths[m] for m in self.ordered_members()], anchor=0, fusion_strategy=self.strategy,
            fusion_dim=self.fusion_dim, strategy_params=self.strategy_params, **self.architecture_fields(),
        )  # fmt: skip

    @classmethod
    def from_trial(cls, config: dict[str, Any], anchor_depth: int) -> BraidChoice:
        anchor, members = parse_members_key(config["braid"])
        return cls(
            members=members, anchor=anchor, strategy=config["strategy"], fusion_points=config["fusion_points"],
            placement=config["placement"],
            fusion_layers=tuple(
                strategy_layers(config["strategy"], anchor_depth, config["fusion_points"], config["placement"])
            ),
            fusion_dim=config["fusion_dim"], lr=config["lr"], steps=config["steps"],
            temperature=config["temperature"],
        )  # fmt: skip


def trial_config(c: Any) -> dict[str, Any]:
    """The Tune trial config that samples a braid and its training (a ``BraidChoice``, or a meta-braider's
    decision): ``BraidChoice.from_trial``'s inverse."""
    return {
        "braid": members_key(c.anchor, c.members), "strategy": c.strategy, "fusion_points": c.fusion_points,
        "placement": c.placement, "fusion_dim": c.fusion_dim, "lr": c.lr, "steps": c.steps,
        "temperature": c.temperature,
    }  # fmt: skip
