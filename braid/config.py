"""Braid configuration: pydantic models, validated before any model weights load.

Validation reads each member's ``config.json`` (no weights) to learn its depth and width, so a fusion layer
out of range or a bad layer map fails with an error naming the field.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from braid.fusion import FUSION_STRATEGIES, split_strategy

Quantization = Literal["8bit", "4bit"]
DType = Literal["float32", "float16", "bfloat16"]


class ArchInfo(BaseModel):
    """What the braid needs to know about a member before loading it."""

    model_config = ConfigDict(frozen=True)
    model_type: str
    num_layers: int
    hidden_size: int
    vocab_size: int


BRAID_CONFIG_FILE = "braid_config.json"  # what makes a directory a saved braid (``braid.checkpoint``)


def is_saved_braid(model_name: str | Path) -> bool:
    """True for a directory ``BraidedLLM.save_pretrained`` wrote: a member that is itself a braid."""
    return (Path(model_name).expanduser() / BRAID_CONFIG_FILE).is_file()


def innermost_anchor(model_name: str) -> str:
    """The model that reads and writes for ``model_name``: itself, or (a saved braid) its anchor's, down
    through braids of braids. Its tokenizer and config are the braid member's."""
    while is_saved_braid(model_name):
        inner = BraidConfig.model_validate_json(
            (Path(model_name).expanduser() / BRAID_CONFIG_FILE).read_text()
        )
        model_name = inner.model_configs[inner.anchor].model_name
    return model_name


@functools.lru_cache(maxsize=256)
def probe_architecture(model_name: str) -> ArchInfo:
    """Read a member's config (config.json only, no weights). A saved braid reads as its anchor."""
    from transformers import AutoConfig

    if is_saved_braid(model_name):
        return probe_architecture(innermost_anchor(model_name))
    local = Path(model_name).expanduser()
    if model_name.startswith(("/", ".", "~")) and not (local / "config.json").is_file():
        what = "no such directory" if not local.exists() else "no config.json there"
        raise ValueError(f"no model at {model_name!r} ({what}): give a save_pretrained directory or a hub id")
    try:
        cfg = AutoConfig.from_pretrained(model_name)
    except (OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"cannot read the config of model {model_name!r}: {first}") from None
    return ArchInfo(
        model_type=cfg.model_type,
        num_layers=cfg.num_hidden_layers,
        hidden_size=cfg.hidden_size,
        vocab_size=cfg.vocab_size,
    )


class MemberConfig(BaseModel):
    """One base model of the braid (the seed's ``model_configs`` entries)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model_name: str = Field(min_length=1)
    role: str | None = None
    quantization: Quantization | None = None
    dtype: DType | None = None
    device: str | None = None
    # a saved braid as the member (``braid.nested``): train its fusion with this braid's instead of freezing it
    trainable: bool = False

    @field_validator("trainable")
    @classmethod
    def _trainable_braid(cls, v: bool, info: ValidationInfo) -> bool:
        name = info.data.get("model_name")
        if v and name is not None and not is_saved_braid(name):
            raise ValueError(f"trainable applies to a saved braid as a member; {name!r} is a single model")
        return v


def proportional_layer(anchor_layer: int, anchor_depth: int, member_depth: int) -> int:
    """Map an anchor block index to the member block at the same relative depth."""
    return max(0, math.floor((anchor_layer + 1) * member_depth / anchor_depth + 0.5) - 1)


class FusionPoint(BaseModel):
    """One hidden-state fusion point's own architecture (what a fusion-architecture search varies); unset
    fields follow the braid's ``fusion_strategy`` hidden part, ``fusion_dim`` and members. Its anchor block
    is the point's entry in ``fusion_layers`` and each member's source block its entry in ``layer_map``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    strategy: str | None = None  # a hidden-state strategy
    fusion_dim: int | None = Field(default=None, ge=1)
    members: list[int] | None = None  # the members taking part (the anchor always does); None: all

    @field_validator("strategy")
    @classmethod
    def _hidden(cls, v: str | None) -> str | None:
        if v is not None and split_strategy(v) != (v, None):
            raise ValueError(f"a fusion point's strategy is one hidden-state strategy, got {v!r}")
        return v


class BraidConfig(BaseModel):
    """Which members to braid, where, and how. Fields validate in order, each against those before it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model_configs: list[MemberConfig] = Field(min_length=2)
    anchor: int = 0
    fusion_strategy: str = "learned_weighted"
    strategy_params: dict[str, Any] = Field(default_factory=dict)
    fusion_dim: int = Field(default=256, ge=1)
    fusion_layers: list[int] | None = Field(default=None, validate_default=True)
    layer_map: dict[int, list[int]] | None = None
    alignment: Literal["auto", "general"] = "auto"  # "general": align by offsets even for shared tokenizers
    points: list[FusionPoint] | None = None  # per hidden fusion point: its own strategy, width, members

    @field_validator("model_configs", mode="before")
    @classmethod
    def _names_to_members(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"model_name": x} if isinstance(x, str) else x for x in v]
        return v

    @field_validator("model_configs")
    @classmethod
    def _members_readable(cls, v: list[MemberConfig]) -> list[MemberConfig]:
        """Every member's config is read here (config.json only), so a wrong path is named before anything
        loads, whichever member it is."""
        for i, member in enumerate(v):
            try:
                probe_architecture(member.model_name)
            except ValueError as e:
                raise ValueError(f"model_configs[{i}]: {e}") from None
        return v

    @field_validator("anchor")
    @classmethod
    def _anchor_in_range(cls, v: int, info: ValidationInfo) -> int:
        n = len(info.data.get("model_configs") or [])
        if n and not 0 <= v < n:
            raise ValueError(f"anchor={v} is out of range for {n} members (valid: 0..{n - 1})")
        return v

    @field_validator("fusion_strategy")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        hidden, output = split_strategy(v)
        return "+".join(p for p in (hidden, output) if p)

    @field_validator("strategy_params")
    @classmethod
    def _strategy_params(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "fusion_strategy" in info.data:
            _params_by_part(info.data["fusion_strategy"], v)
        return v

    @field_validator("fusion_dim")
    @classmethod
    def _heads_divide(cls, v: int, info: ValidationInfo) -> int:
        if "fusion_strategy" not in info.data or "strategy_params" not in info.data:
            return v
        parts = _params_by_part(info.data["fusion_strategy"], info.data["strategy_params"])
        for params in parts.values():
            heads = getattr(params, "num_heads", None)
            if heads and v % heads:
                raise ValueError(f"fusion_dim={v} must be divisible by num_heads={heads}")
        return v

    @field_validator("fusion_layers")
    @classmethod
    def _layers_in_range(cls, v: list[int] | None, info: ValidationInfo) -> list[int] | None:
        members, anchor = info.data.get("model_configs"), info.data.get("anchor")
        strategy = info.data.get("fusion_strategy")
        if strategy is not None and split_strategy(strategy)[0] is None:
            if v:
                raise ValueError(
                    f"{strategy!r} is output-level: it has no hidden fusion points, so fusion_layers must be "
                    f"empty (got {v}); add a hidden-state strategy (e.g. 'attention+{strategy}') to fuse there"
                )
            return []
        if not members or anchor is None:
            return v
        depth = probe_architecture(members[anchor].model_name).num_layers
        layers = v if v is not None else default_fusion_layers(depth)
        if not layers or any(not 0 <= k < depth for k in layers):
            raise ValueError(
                f"fusion_layers {layers} must be non-empty anchor block indices in 0..{depth - 1} "
                f"(the anchor {members[anchor].model_name!r} has {depth} layers)"
            )
        if sorted(set(layers)) != list(layers):
            raise ValueError(f"fusion_layers {layers} must be strictly increasing")
        return list(layers)

    @field_validator("layer_map")
    @classmethod
    def _layer_map(cls, v: dict[int, list[int]] | None, info: ValidationInfo) -> dict[int, list[int]] | None:
        members, anchor, points = (info.data.get(k) for k in ("model_configs", "anchor", "fusion_layers"))
        if v is None or not members or anchor is None or points is None:
            return v
        for m, layers in v.items():
            if not 0 <= m < len(members) or m == anchor:
                raise ValueError(f"key {m} must be a non-anchor member index")
            depth = probe_architecture(members[m].model_name).num_layers
            if len(layers) != len(points):
                raise ValueError(f"layer_map[{m}] needs one layer per fusion point ({len(points)})")
            if any(not 0 <= k < depth for k in layers) or sorted(layers) != list(layers):
                raise ValueError(
                    f"layer_map[{m}]={layers} must be non-decreasing layer indices in 0..{depth - 1}"
                )
        return v

    @field_validator("points")
    @classmethod
    def _points(cls, v: list[FusionPoint] | None, info: ValidationInfo) -> list[FusionPoint] | None:
        members, anchor, layers = (info.data.get(k) for k in ("model_configs", "anchor", "fusion_layers"))
        if v is None or not members or anchor is None or layers is None:
            return v
        if len(v) != len(layers):
            raise ValueError(f"points needs one entry per fusion point ({len(layers)}), got {len(v)}")
        for p, point in enumerate(v):
            who = point.members
            if who is not None and (anchor not in who or any(not 0 <= m < len(members) for m in who)):
                raise ValueError(
                    f"points[{p}].members={who} must be member indices including the anchor {anchor}"
                )
            if point.strategy is not None or point.fusion_dim is not None:
                name = point.strategy or split_strategy(info.data.get("fusion_strategy", ""))[0]
                dim = point.fusion_dim or info.data.get("fusion_dim")
                heads = getattr(_point_params(name, info.data), "num_heads", None)
                if heads and dim % heads:
                    raise ValueError(f"points[{p}]: fusion_dim={dim} must be divisible by num_heads={heads}")
        return v

    def point(self, p: int) -> tuple[str, int, Any, list[int]]:
        """Hidden fusion point p's strategy, width, params and members (its ``points`` entry over the braid's)."""
        point = self.points[p] if self.points else FusionPoint()
        name = point.strategy or self.hidden_strategy
        members = list(point.members) if point.members is not None else list(range(len(self.model_configs)))
        params = _point_params(
            name, {"fusion_strategy": self.fusion_strategy, "strategy_params": self.strategy_params}
        )
        return name, point.fusion_dim or self.fusion_dim, params, sorted(members)

    @property
    def archs(self) -> list[ArchInfo]:
        return [probe_architecture(m.model_name) for m in self.model_configs]

    @property
    def hidden_strategy(self) -> str | None:
        """The hidden-state part of ``fusion_strategy`` (None for an output-level strategy alone)."""
        return split_strategy(self.fusion_strategy)[0]

    @property
    def output_strategy(self) -> str | None:
        """The output-level part of ``fusion_strategy`` (None for a hidden-state strategy alone)."""
        return split_strategy(self.fusion_strategy)[1]

    @property
    def hidden_params(self):
        return _params_by_part(self.fusion_strategy, self.strategy_params).get(self.hidden_strategy)

    @property
    def output_params(self):
        return _params_by_part(self.fusion_strategy, self.strategy_params).get(self.output_strategy)

    def member_layers(self) -> list[list[int]]:
        """For each member, the block index it exchanges at for each fusion point."""
        archs = self.archs
        anchor_depth = archs[self.anchor].num_layers
        plan = []
        for m, arch in enumerate(archs):
            if m == self.anchor:
                plan.append(list(self.fusion_layers))
            elif self.layer_map and m in self.layer_map:
                plan.append(list(self.layer_map[m]))
            else:
                plan.append(
                    [proportional_layer(k, anchor_depth, arch.num_layers) for k in self.fusion_layers]
                )
        return plan

    @classmethod
    def from_yaml(cls, path: str | Path) -> BraidConfig:
        return cls.model_validate(yaml.safe_load(Path(path).read_text()))

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))


def _params_by_part(strategy: str, params: dict[str, Any]) -> dict[str, Any]:
    """Each part's validated Params. One strategy takes flat params; a combination takes them per part,
    ``{"attention": {"num_heads": 8}, "pointer": {"window": 16}}``."""
    parts = [p for p in split_strategy(strategy) if p]
    if len(parts) == 1:
        return {parts[0]: FUSION_STRATEGIES[parts[0]].Params.model_validate(params)}
    unknown = sorted(set(params) - set(parts))
    if unknown:
        raise ValueError(
            f"strategy_params of {strategy!r} must be keyed by its parts {parts}, got {unknown}; "
            f"e.g. {{{parts[0]!r}: {{...}}}}"
        )
    return {p: FUSION_STRATEGIES[p].Params.model_validate(params.get(p, {})) for p in parts}


def _point_params(name: str | None, data: dict[str, Any]) -> Any:
    """A point's strategy params: the braid's when the point uses the braid's hidden strategy, else defaults."""
    if name is None:
        return None
    strategy, params = data.get("fusion_strategy", ""), data.get("strategy_params", {})
    if strategy and split_strategy(strategy)[0] == name:
        return _params_by_part(strategy, params)[name]
    return FUSION_STRATEGIES[name].Params()


def default_fusion_layers(depth: int, points: int = 4) -> list[int]:
    """Evenly spaced fusion points ending at the last block (all blocks when shallower than ``points``)."""
    if depth <= points:
        return list(range(depth))
    return sorted({round((i + 1) * depth / points) - 1 for i in range(points)})
