"""``BraidingDecision``: what the meta-braider decides, a ``BraidSpec`` (so decisions, sweep records and the
gateway's braid keys name a braid the same way) with its training and predictions; and the candidate grid
it chooses from.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from pydantic import PrivateAttr

from braid.config import BraidConfig
from braid.spec import BraidSpec, TrainSpec
from meta.net import DecisionSpace
from tune.space import BraidChoice, trial_config


class BraidingDecision(TrainSpec, BraidSpec):  # fields: the braid's, then its training's
    """A braid (``BraidSpec``), how to train and sample it (``TrainSpec``), and what the meta-braider
    predicted for it."""

    predicted_score: float | None = None
    predicted_decode_ms: float | None = None
    predicted_memory_mb: float | None = None
    _paths: dict[str, str] = PrivateAttr(default_factory=dict)  # where the deciding agent's pool loads from
    _pool: tuple[str, ...] = PrivateAttr(default=())  # the pool it was chosen from
    _architecture: BraidChoice | None = PrivateAttr(
        default=None
    )  # a searched refinement (meta.architectures)

    def built_from(self, paths: dict[str, str], pool: Sequence[str] = ()) -> BraidingDecision:
        """Remember the deciding agent's pool and checkpoint paths (not part of the decision's identity or
        JSON), so ``create_braided_model(decision)`` needs nothing else."""
        self._paths, self._pool = dict(paths), tuple(pool)
        return self

    def refined_by(self, architecture: BraidChoice | None) -> BraidingDecision:
        """Build this decision as a searched architecture that refines it (``meta.architectures``): the
        configuration its predicted score was learned from."""
        self._architecture = architecture
        return self

    @property
    def architecture(self) -> BraidChoice | None:
        return self._architecture

    def served_key(self) -> str:
        """The key the gateway builds this braid from: the grid key, or a searched refinement's
        (``meta.architectures.architecture_key``)."""
        from meta.architectures import architecture_key

        key = self.structure().key()
        return architecture_key(key, self._architecture) if self._architecture else key

    def __eq__(self, other: object) -> bool:  # the paths say where a braid loads from, not what it is
        if not isinstance(other, BraidingDecision):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # strategy_params is a dict: never hashable

    def to_choice(self, anchor_depth: int) -> BraidChoice:
        """The sweep's BraidChoice (fusion layers placed on the anchor's depth)."""
        return BraidChoice.from_trial(trial_config(self), anchor_depth)

    def to_braid_config(self, paths: dict[str, str] | None = None) -> BraidConfig:
        """A BraidConfig over the members' paths (``paths``: pool name -> model path or hub id; default: the
        deciding agent's)."""
        paths = {**self._paths, **(paths or {})}
        if missing := [m for m in self.members if m not in paths]:
            raise ValueError(
                f"no checkpoint path for {missing}: give the agent paths (MetaBraider(pool, paths=...)) or pool "
                "entries with model_name, or pass paths here"
            )
        return self._architecture.to_config(paths) if self._architecture else self.to_config(paths)


def create_braided_model(
    decision: BraidingDecision,
    paths: dict[str, str] | None = None,
    placement: str = "local",
    ray_placement=None,
):
    """The ``BraidedLLM`` a decision names (the seed's ``create_braided_model(decision)``); its fusion is
    untrained until you train it (``braid.train``) or load a checkpoint into it."""
    from braid.braided import BraidedLLM

    return BraidedLLM(
        config=decision.to_braid_config(paths), placement=placement, ray_placement=ray_placement
    )


class Candidates:
    """Every discrete configuration over a pool: member subsets with their anchor, strategy, points,
    placement, fusion_dim and steps. Tensors are ready for ``DecisionNet.score``."""

    def __init__(self, pool: Sequence[str], space: DecisionSpace):
        self.pool, self.space = list(pool), space
        groups = [
            (group, anchor)
            for k in range(2, min(space.max_members, len(pool)) + 1)
            for group in itertools.combinations(range(len(pool)), k)
            for anchor in group
        ]
        self.rows = list(
            itertools.product(
                groups, range(len(space.strategies)), range(len(space.fusion_points)),
                range(len(space.placements)), range(len(space.fusion_dims)), range(len(space.steps)),
            )
        )  # fmt: skip
        self._index = {row: i for i, row in enumerate(self.rows)}
        n, c = len(pool), len(self.rows)
        self.members = torch.zeros(c, n)
        self.anchor = torch.zeros(c, n)
        for i, ((group, a), *_) in enumerate(self.rows):
            self.members[i, list(group)] = 1.0
            self.anchor[i, a] = 1.0

    def __len__(self) -> int:
        return len(self.rows)

    def config(self, lr01: float, temp01: float) -> torch.Tensor:
        """(C, candidate_dim): one-hots of the discrete choices plus member count, steps, lr, temperature."""
        if getattr(self, "_discrete", None) is None:
            self._discrete = torch.stack([self.config_row(i, 0.0, 0.0) for i in range(len(self.rows))])
        out = self._discrete.clone()
        out[:, -2:] = torch.tensor([lr01, temp01])
        return out

    def config_row(self, i: int, lr01: float, temp01: float) -> torch.Tensor:
        s = self.space
        (group, _), st, pt, pl, fd, sp = self.rows[i]
        out = torch.zeros(s.candidate_dim)
        o_pts = len(s.strategies)
        o_plc = o_pts + len(s.fusion_points)
        o_dim = o_plc + len(s.placements)
        out[[st, o_pts + pt, o_plc + pl, o_dim + fd]] = 1.0
        out[o_dim + len(s.fusion_dims) :] = torch.tensor(
            [len(group) / s.max_members, math.log2(s.steps[sp]) / 8, lr01, temp01]
        )
        return out

    def decision(
        self, i: int, lr01: float, temp01: float, pred: Sequence[float] | None = None
    ) -> BraidingDecision:
        s = self.space
        (group, a), st, pt, pl, fd, sp = self.rows[i]
        lr, temperature = s.from_unit(lr01, temp01)
        extra = {}
        if pred is not None:
            # log-scale predictions, capped so an out-of-range prediction cannot overflow
            extra = {"predicted_score": pred[0], "predicted_decode_ms": math.exp(min(pred[1], 50.0)),
                     "predicted_memory_mb": math.exp(min(pred[2], 50.0))}  # fmt: skip
        return BraidingDecision(
            members=tuple(sorted(self.pool[g] for g in group)), anchor=self.pool[a], strategy=s.strategies[st],
            fusion_points=s.fusion_points[pt], placement=s.placements[pl], fusion_dim=s.fusion_dims[fd],
            lr=lr, steps=s.steps[sp], temperature=temperature, **extra,
        )  # fmt: skip

    def keys(self) -> frozenset[str]:
        """The ``BraidSpec.key()`` of every braid structure on the grid (the gateway offers these)."""
        s, out = self.space, set()
        for (group, a), st, pt, pl, fd, _ in self.rows:
            out.add(BraidSpec(
                members=tuple(sorted(self.pool[g] for g in group)), anchor=self.pool[a], strategy=s.strategies[st],
                fusion_points=s.fusion_points[pt], placement=s.placements[pl], fusion_dim=s.fusion_dims[fd],
            ).key())  # fmt: skip
        return frozenset(out)

    def index_of(self, decision: BraidingDecision) -> int:
        """The row of a decision's discrete choices (sweep records map onto the grid this way)."""
        s = self.space
        group = tuple(sorted(self.pool.index(m) for m in decision.members))
        key = (
            (group, self.pool.index(decision.anchor)), s.strategies.index(decision.strategy),
            s.fusion_points.index(decision.fusion_points), s.placements.index(decision.placement),
            s.fusion_dims.index(decision.fusion_dim), s.steps.index(decision.steps),
        )  # fmt: skip
        return self._index[key]
