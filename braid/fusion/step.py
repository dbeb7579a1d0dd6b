"""One braided pass's fusion callback, and what incremental generation keeps for it between passes.

``FusionStep`` is what a ``MemberRunner`` calls at every fusion point: it aligns the members' states to
the anchor's positions, runs that point's strategy module and maps each update back to its member's own
positions. ``FusionHistory`` keeps, across the steps of one generated sequence, the states and updates of
members that read the text through their own tokenizer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from braid.alignment import Alignment


class FusionHistory:
    """What incremental generation keeps per fusion point for members that read through their own tokenizer:
    their past states (an anchor position may align to an earlier member token) and the past anchor-frame
    updates (a re-tokenized member token may receive from an earlier anchor position)."""

    def __init__(self, members: set[int]):
        self.members = members
        self._states: dict[tuple[int, int], torch.Tensor] = {}  # (point, member) -> (B, L_m, D_m)
        self._updates: dict[tuple[int, int], torch.Tensor] = {}  # (point, member) -> (B, T_anchor, D_m)

    def states(self, point: int, m: int, new: torch.Tensor | None) -> torch.Tensor:
        return _extend(self._states, (point, m), new)

    def updates(self, point: int, m: int, new: torch.Tensor) -> torch.Tensor:
        return _extend(self._updates, (point, m), new)

    def crop(self, m: int, length: int) -> None:
        """Forget member m's states from token ``length`` on (its KV cache was cropped alike)."""
        for key, value in self._states.items():
            if key[1] == m:
                self._states[key] = value[:, :length]


def _extend(store: dict, key: tuple[int, int], new: torch.Tensor | None) -> torch.Tensor:
    past = store.get(key)
    full = new if past is None else past if new is None else torch.cat([past, new], 1)
    store[key] = full
    return full


class FusionStep:
    """The fusion callback for one braided pass: align to the anchor frame, mix, map the updates back."""

    def __init__(
        self,
        modules: nn.ModuleList,
        alignment: Alignment,
        caches: list[dict[str, Any]] | None,
        history: FusionHistory | None = None,
        members: list[list[int]] | None = None,
    ):
        """``members[p]``: the members taking part at point p (None: all); the others read as invalid there."""
        self.modules, self.alignment, self.caches = modules, alignment, caches
        self.history, self.members = history, members
        self.param = next(modules.parameters())
        valid = alignment.valid  # (B, M, T), or None when all valid: strategies then skip masking
        self.valid = None if valid is None else valid.to(self.param.device)

    def __call__(self, point: int, states: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
        dev, dt = self.param.device, self.param.dtype
        tracked = self.history.members if self.history is not None else set()
        full = [None if h is None else h.to(dev, dt) for h in states]
        full = [self.history.states(point, m, h) if m in tracked else h for m, h in enumerate(full)]
        aligned = [None if h is None else self.alignment.gather_to_anchor(m, h) for m, h in enumerate(full)]
        frame = next(a for a in aligned if a is not None).shape[:2]  # (B, T_anchor): the anchor always runs
        dims = self.modules[point].member_dims
        aligned = [
            torch.zeros(*frame, dims[m], device=dev, dtype=dt) if a is None else a
            for m, a in enumerate(aligned)
        ]
        cache = None if self.caches is None else self.caches[point]
        updates = self.modules[point](aligned, self._valid(point, frame), cache)
        out: list[torch.Tensor | None] = []
        for m, (u, h) in enumerate(zip(updates, states, strict=True)):
            if u is not None and m in tracked:
                u = self.history.updates(point, m, u)
            if u is None or h is None:
                out.append(None)
            else:
                out.append(self.alignment.scatter_from_anchor(m, u).to(h.device, h.dtype))
        return out

    def _valid(self, point: int, frame: torch.Size) -> torch.Tensor | None:
        """(B, M, T) validity at this point: the alignment's, with members not taking part masked out."""
        n = len(self.modules[point].member_dims)
        if self.members is None or len(self.members[point]) == n:
            return self.valid
        valid = self.valid if self.valid is not None else torch.ones(frame[0], n, frame[1], dtype=torch.bool)
        valid = valid.clone()
        valid[:, [m for m in range(n) if m not in self.members[point]]] = False
        return valid.to(self.param.device)
