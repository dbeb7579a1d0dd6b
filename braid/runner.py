"""The runner seam: how a braid's members run for one pass, meeting at every fusion point.

A ``BraidedLLM`` owns one ``MemberRunner``. Everything else in a braid (views, alignment, the fusion step,
incremental sessions, sampling, streaming text, save/load) is the same code whatever runs the members, so
a new placement is one runner: the in-process ``LocalRunner`` below, or ``cluster.leader.ChannelRunner``,
whose members are servers reached over TCP channels.

``PLACEMENTS`` names the placements ``BraidedLLM(placement=...)`` accepts: each is the import path of a
function ``(config, options) -> (members or None, runner)``, resolved on first use (Ray is an optional
dependency, and the core never imports the layers above it). None for the members: the braid loads them
here.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import torch

if TYPE_CHECKING:
    from braid.braided import BraidedLLM
    from braid.fusion.step import FusionStep

T = TypeVar("T")
PLACEMENTS = {"local": "braid.runner:local_members", "ray": "cluster.braid:ray_members"}


class MemberLost(RuntimeError):
    """A member stopped answering mid-request; the runner can bring it back (``MemberRunner.recover``)."""

    def __init__(self, member: int, reason: str):
        super().__init__(f"member {member} was lost: {reason}")
        self.member = member


class BraidUnavailable(RuntimeError):
    """A lost member could not be brought back within the runner's recovery budget."""


class MemberRunner:
    """Runs the members of one braid for one pass. Subclasses implement ``run``; a runner whose members
    can be lost raises ``MemberLost`` from it and implements ``recover``."""

    attempts = 1  # how many times a request is tried when members are lost (1: never retried)

    def attach(self, braid: BraidedLLM) -> None:
        """Called once by the braid that owns this runner, after its fusion modules exist."""

    def run(
        self,
        braid: BraidedLLM,
        inputs: list[dict[str, torch.Tensor] | None],
        caches: list[Any] | None,
        fuse: FusionStep,
        output_hidden_states: bool = False,
    ) -> list[Any]:
        """Each member's forward on ``inputs[m]`` (None: member m sits this pass out), with ``fuse(p, states)``
        called once per fusion point p. Returns per member an object with ``logits`` (None when the braid
        reads none: ``m not in braid.logit_members``), and for the anchor of a braid with an output-level
        strategy ``final_hidden``; with ``output_hidden_states``, ``hidden_states``."""
        raise NotImplementedError

    def recover(self, lost: MemberLost) -> None:
        raise BraidUnavailable(str(lost)) from lost

    def with_recovery(self, fn: Callable[[], T]) -> T:
        """``fn()``, recovering and retrying up to ``attempts`` times in all when a member is lost."""
        for _ in range(self.attempts - 1):
            try:
                return fn()
            except MemberLost as e:
                self.recover(e)
        return fn()

    def close(self) -> None:
        """Release what the runner holds (connections); the braid can no longer run afterwards."""


class LocalRunner(MemberRunner):
    """Every member in this process, each HF forward in its own greenlet (see ``braid.lockstep``)."""

    def run(self, braid, inputs, caches, fuse, output_hidden_states=False) -> list[Any]:
        calls = [
            None
            if inputs[m] is None
            else functools.partial(
                member.forward,
                **inputs[m],
                past_key_values=None if caches is None else caches[m],
                use_cache=caches is not None,
                output_hidden_states=output_hidden_states,
                **({} if m in braid.logit_members else member.no_logits),
            )
            for m, member in enumerate(braid.models)
        ]
        with contextlib.ExitStack() as stack:
            for m, member in enumerate(braid.models):
                if calls[m] is not None:
                    stack.enter_context(member.inject(braid.lockstep.hooks(m)))
            final = None
            if braid.fusion_modules.output is not None:
                final = stack.enter_context(braid.anchor_model.capture_final_hidden())
            outs = braid.lockstep.run(calls, fuse)
        if final is not None:
            outs[braid.config.anchor].final_hidden = final.value
        return outs


def local_members(config: Any, options: Any = None) -> tuple[None, LocalRunner]:
    """``placement="local"``: the braid loads its members in this process."""
    if options is not None:
        raise ValueError(f"placement='local' takes no placement options (got {options!r})")
    return None, LocalRunner()


def resolve(path: str) -> Any:
    """``"package.module:attr"`` -> the attribute (imported on first use)."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def check_placement(placement: str) -> None:
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; valid: {', '.join(sorted(PLACEMENTS))}")
