"""Fusion strategies, one per file, in an explicit registry keyed by the name configs use.

Two levels: hidden-state strategies exchange states inside the members at fusion points; output-level
strategies mix the members' own next-token distributions. A braid uses one of either or one of each,
written ``"<hidden>+<output>"`` (e.g. ``"attention+pointer"``).
"""

from __future__ import annotations

from braid.fusion.attention import AttentionFusion
from braid.fusion.base import FusionModule, StrategyParams
from braid.fusion.calm import CalmFusion
from braid.fusion.learned_weighted import LearnedWeightedFusion
from braid.fusion.output import OutputFusion, OutputParams
from braid.fusion.output_router import OutputRouterFusion
from braid.fusion.pointer import PointerFusion
from braid.fusion.router import RouterFusion

FUSION_STRATEGIES: dict[str, type[FusionModule] | type[OutputFusion]] = {
    cls.name: cls
    for cls in (
        LearnedWeightedFusion,
        AttentionFusion,
        RouterFusion,
        CalmFusion,
        OutputRouterFusion,
        PointerFusion,
    )
}


def get_strategy(name: str) -> type[FusionModule] | type[OutputFusion]:
    try:
        return FUSION_STRATEGIES[name]
    except KeyError:
        valid = ", ".join(sorted(FUSION_STRATEGIES))
        raise ValueError(
            f"unknown fusion strategy {name!r}; valid strategies: {valid} "
            "(or one hidden-state and one output-level strategy joined by '+', e.g. 'attention+pointer')"
        ) from None


def split_strategy(spec: str) -> tuple[str | None, str | None]:
    """``"attention+pointer"`` -> ("attention", "pointer"); ``"router"`` -> ("router", None)."""
    parts = [p.strip() for p in spec.split("+")]
    levels: dict[str, str] = {}
    for part in parts:
        level = get_strategy(part).level
        if level in levels:
            raise ValueError(
                f"{spec!r} names two {level}-level strategies ({levels[level]!r}, {part!r}); "
                "combine at most one hidden-state and one output-level strategy"
            )
        levels[level] = part
    return levels.get("hidden"), levels.get("output")


def strategy_names(hidden: bool = True, output: bool = True, combined: bool = False) -> list[str]:
    """Registered names by level, and (``combined``) every hidden+output pair."""
    hid = [n for n, c in FUSION_STRATEGIES.items() if c.level == "hidden"]
    out = [n for n, c in FUSION_STRATEGIES.items() if c.level == "output"]
    names = (hid if hidden else []) + (out if output else [])
    return names + ([f"{h}+{o}" for h in hid for o in out] if combined else [])


__all__ = [
    "FUSION_STRATEGIES",
    "FusionModule",
    "OutputFusion",
    "OutputParams",
    "StrategyParams",
    "get_strategy",
    "split_strategy",
    "strategy_names",
]
