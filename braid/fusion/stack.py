"""The braid's trainable part: hidden-state modules per fusion point and the output-level module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from torch import nn

from braid.fusion import OutputFusion, get_strategy

if TYPE_CHECKING:
    from braid.config import BraidConfig


class FusionStack(nn.Module):
    """The braid's trainable part: a hidden-state module per fusion point (registered as "0", "1", ...,
    the state-dict layout checkpoints have always had) and the output-level module ("output") if any.
    Indexing, ``len`` and iteration address the fusion points."""

    def __init__(self, points: list[nn.Module], output: OutputFusion | None):
        super().__init__()
        for p, module in enumerate(points):
            self.add_module(str(p), module)
        self.num_points = len(points)
        self.output = output

    def __getitem__(self, p: int) -> nn.Module:
        if not 0 <= p < self.num_points:
            raise IndexError(f"fusion point {p} out of range 0..{self.num_points - 1}")
        return self._modules[str(p)]

    def __len__(self) -> int:
        return self.num_points

    def __iter__(self) -> Iterator[nn.Module]:
        return (self[p] for p in range(self.num_points))


def build_fusion(config: BraidConfig, dims: list[int], readings: list[int]) -> FusionStack:
    """Fresh fusion modules for ``config``: members of widths ``dims``; ``readings[m]`` distributions of
    the m-th non-anchor member feed the output-level module (more than 1: a bridged member's readings)."""
    points = []
    if config.hidden_strategy is not None:
        last = len(config.fusion_layers) - 1
        for p in range(last + 1):  # each point its own strategy, width and members (``BraidConfig.point``)
            name, dim, params, members = config.point(p)
            strategy = get_strategy(name)
            points.append(
                strategy(dims, dim, params, [config.anchor] if p == last or strategy.one_way else members)
            )
    output = None
    if config.output_strategy is not None:
        cls = get_strategy(config.output_strategy)
        output = cls(dims[config.anchor], len(readings), config.fusion_dim, config.output_params, readings)
    return FusionStack(points, output)
