"""Run the members' forwards side by side in one process, meeting at every fusion point.

Each member's unmodified HF forward runs in its own greenlet. A hook at a fusion block parks the member with
its hidden state; when every member has parked at point p, the scheduler fuses once and resumes each member
with its update. Greenlets switch in about a microsecond on one thread, so there is no lock, no GIL handoff
and one deterministic order; each greenlet keeps its own contextvars, which HF's output capture relies on.

Locksteps nest: a member that is itself a braid (``braid.nested``) runs its own members in greenlets under
its member's greenlet. So a hook parks by switching to the scheduler of the lockstep that installed it (not
to its greenlet's parent, which may be an inner scheduler), and the scheduler resumes the greenlet that
parked (not the member's top greenlet, which may be waiting inside an inner scheduler).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import greenlet
import torch

FuseFn = Callable[[int, list[torch.Tensor | None]], list[torch.Tensor | None]]


class Lockstep:
    """``plan[m][p]`` is member m's block index for fusion point p (non-decreasing in p)."""

    def __init__(self, plan: Sequence[Sequence[int]]):
        self.plan = [list(p) for p in plan]
        self.num_points = len(self.plan[0])
        self._driver: greenlet.greenlet | None = None  # the scheduler while ``run`` is active
        self._points_at: list[dict[int, list[int]]] = []
        for layers in self.plan:
            at: dict[int, list[int]] = defaultdict(list)
            for p, layer in enumerate(layers):
                at[layer].append(p)
            self._points_at.append(dict(at))

    def points_at(self, m: int) -> dict[int, list[int]]:
        """Member m's fusion blocks, each with the points (in order) that meet there."""
        return {layer: list(points) for layer, points in self._points_at[m].items()}

    def hooks(self, m: int) -> dict[int, Callable[[torch.Tensor], torch.Tensor]]:
        """Layer edits for member m: park at each of its fusion points and add the update received."""

        def at_layer(points: list[int]) -> Callable[[torch.Tensor], torch.Tensor]:
            def edit(h: torch.Tensor) -> torch.Tensor:
                for p in points:
                    update = self._driver.switch((p, h, greenlet.getcurrent()))
                    if update is not None:
                        h = h + update
                return h

            return edit

        return {layer: at_layer(points) for layer, points in self._points_at[m].items()}

    def run(self, calls: Sequence[Callable[[], Any] | None], fuse: FuseFn) -> list[Any]:
        """Run ``calls`` (one per member, each with this lockstep's hooks active) and return their results.

        A member whose call is None sits this pass out: the fusion sees None for its state at every point.
        """
        glets = {m: greenlet.greenlet(call) for m, call in enumerate(calls) if call is not None}
        results: list[Any] = [None] * len(calls)
        parked: dict[int, tuple[int, torch.Tensor]] = {}
        resume = dict(glets)  # per member, the greenlet to switch to next (the one that parked)

        def advance(m: int, *value: Any) -> None:
            out = resume[m].switch(*value)
            if glets[m].dead:
                results[m] = out
            else:
                p, h, resume[m] = out
                parked[m] = (p, h)

        outer, self._driver = self._driver, greenlet.getcurrent()
        try:
            for m in glets:
                advance(m)
            for p in range(self.num_points):
                missing = [m for m in glets if parked.get(m, (None,))[0] != p]
                if missing:
                    raise RuntimeError(f"members {missing} did not reach fusion point {p}")
                states = [parked.pop(m)[1] if m in glets else None for m in range(len(calls))]
                updates = fuse(p, states)
                for m in glets:
                    advance(m, updates[m])
            if parked:
                raise RuntimeError(f"members {sorted(parked)} parked after the last fusion point")
        finally:
            self._driver = outer
            for g in glets.values():
                if not g.dead:
                    g.throw(greenlet.GreenletExit)
        return results
