"""Fusion strategies, one per file, in an explicit registry keyed by the name configs use."""

from __future__ import annotations

from braid.fusion.attention import AttentionFusion
from braid.fusion.base import FusionModule, StrategyParams
from braid.fusion.learned_weighted import LearnedWeightedFusion
from braid.fusion.router import RouterFusion

FUSION_STRATEGIES: dict[str, type[FusionModule]] = {
    cls.name: cls for cls in (LearnedWeightedFusion, AttentionFusion, RouterFusion)
}


def get_strategy(name: str) -> type[FusionModule]:
    try:
        return FUSION_STRATEGIES[name]
    except KeyError:
        valid = ", ".join(sorted(FUSION_STRATEGIES))
        raise ValueError(f"unknown fusion strategy {name!r}; valid strategies: {valid}") from None


__all__ = ["FUSION_STRATEGIES", "FusionModule", "StrategyParams", "get_strategy"]
