"""What a braid is, named the same way everywhere: ``BraidSpec``.

A spec is the structure of a braid over a pool of named models: its members (the anchor among them), the
strategy, the fusion plan (how many points, placed early / spread / late on the anchor's depth), the
fusion width and the strategy's parameters. Tune's trials (``tune.space.BraidChoice``), the meta-braider's
decisions (``meta.decision.BraidingDecision``) and the gateway's braid keys are specs plus what each adds
(how to train it, what was predicted), so one braid has one identity:

    BraidSpec.parse("code|code,prose|attention|2|spread|16").key()  # the same string back

``TrainSpec`` is how a braid is trained (lr, steps) and sampled (temperature).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from braid.config import BraidConfig

Placement = Literal["early", "spread", "late"]
KEY_FIELDS = "anchor|members|strategy|points|placement|dim[|params JSON]"


def members_key(anchor: str, members: Any) -> str:
    """``"anchor|a,b"``: a member subset with its anchor, as one categorical choice (Tune's ``braid``)."""
    return f"{anchor}|{','.join(sorted(members))}"


def parse_members_key(key: str) -> tuple[str, tuple[str, ...]]:
    anchor, _, members = key.partition("|")
    if not anchor or not members:
        raise ValueError(f"not a member key (anchor|a,b): {key!r}")
    return anchor, tuple(members.split(","))


class BraidSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    members: tuple[str, ...] = Field(min_length=2)
    anchor: str
    strategy: str
    fusion_points: int = Field(ge=1)
    placement: Placement
    fusion_dim: int = Field(ge=1)
    strategy_params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _anchor_is_member(self) -> BraidSpec:
        if self.anchor not in self.members:
            raise ValueError(f"anchor {self.anchor!r} is not one of the members {list(self.members)}")
        return self

    def structure(self) -> BraidSpec:
        """The spec part of a subclass (a trial's choice, a decision): what the braid is, nothing more."""
        return BraidSpec(**{name: getattr(self, name) for name in BraidSpec.model_fields})

    def key(self) -> str:
        s = self
        key = (
            f"{members_key(s.anchor, s.members)}|{s.strategy}|{s.fusion_points}|{s.placement}|{s.fusion_dim}"
        )
        return key + (f"|{json.dumps(s.strategy_params, sort_keys=True)}" if s.strategy_params else "")

    @classmethod
    def parse(cls, key: str) -> BraidSpec:
        """The spec a ``key()`` names, or ValueError naming the expected form."""
        try:
            anchor, members, strategy, points, placement, dim, *params = key.split("|", 6)
            return cls(
                members=tuple(members.split(",")), anchor=anchor, strategy=strategy, fusion_points=int(points),
                placement=placement, fusion_dim=int(dim), strategy_params=json.loads(params[0]) if params else {},
            )  # fmt: skip
        except ValueError as e:
            raise ValueError(f"not a braid key ({KEY_FIELDS}): {key!r}: {e}") from None

    def ordered_members(self) -> list[str]:
        """Anchor first (BraidedLLM's anchor index 0), then the rest in name order."""
        return [self.anchor, *sorted(m for m in self.members if m != self.anchor)]

    def layers_for(self, anchor_depth: int) -> list[int]:
        """The anchor blocks this braid fuses at, on an anchor of ``anchor_depth`` blocks."""
        return strategy_layers(self.strategy, anchor_depth, self.fusion_points, self.placement)

    def to_config(self, paths: dict[str, str]) -> BraidConfig:
        """A BraidConfig over the members' paths (``paths``: pool name -> model path or hub id)."""
        from braid.config import BraidConfig, probe_architecture

        if missing := sorted(set(self.members) - set(paths)):
            raise ValueError(f"no path for members {missing}; known: {sorted(paths)}")
        return BraidConfig(
            model_configs=[paths[m] for m in self.ordered_members()], anchor=0, fusion_strategy=self.strategy,
            fusion_layers=self.layers_for(probe_architecture(paths[self.anchor]).num_layers),
            fusion_dim=self.fusion_dim, strategy_params=self.strategy_params,
        )  # fmt: skip


class TrainSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    lr: float = Field(gt=0)
    steps: int = Field(ge=1)
    temperature: float = Field(ge=0)


def strategy_layers(strategy: str, depth: int, points: int, placement: str) -> list[int]:
    """The anchor blocks a strategy fuses at: none for an output-level strategy alone."""
    from braid.fusion import split_strategy

    return [] if split_strategy(strategy)[0] is None else place_layers(depth, points, placement)


def place_layers(depth: int, points: int, placement: str) -> list[int]:
    """``points`` anchor blocks: the first ones, evenly spread ending at the last, or the last ones."""
    from braid.config import default_fusion_layers

    points = min(points, depth)
    if placement == "early":
        return list(range(points))
    if placement == "late":
        return list(range(depth - points, depth))
    return default_fusion_layers(depth, points)
