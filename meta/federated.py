"""Federated meta-learning: replicas learn from their own feedback and merge their updates.

Each replica (a gateway on its own node) holds a copy of the meta-braider and learns online as usual
(``MetaBraider.learn_from_feedback``). Every ``sync_every`` updates it sends the merger what it learnt since
the global state it last pulled (a delta over the decision net's parameters), then pulls the merged state.

The merger adds each delta to the global state: federated averaging with a server learning rate of one per
replica, so the merged state moves as far as one replica that saw all the feedback would have (to first
order), not 1/N of it. A delta computed on a base more than ``staleness`` merges old is refused: the replica
pulls, replays its pending feedback on the fresh state and sends again, so no feedback is lost and no update
is applied against a state it never saw. Every merge is on disk before it is acknowledged, so neither a
merger restart nor a replica restart (which starts from a pull) loses a merged update.

What is federated: the decision net (the scorer, the selector heads). What stays with a replica: its
optimiser moments and replay buffer, the calibration, and per-user corrections (``meta.personal``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

if TYPE_CHECKING:
    from meta.agent import MetaBraider

State = dict[str, torch.Tensor]


class Merger:
    """The global state, its version (merges so far) and the staleness bound; ``path`` keeps both on disk."""

    def __init__(self, initial: State | None = None, path: str | Path | None = None, staleness: int = 4):
        if staleness < 0:
            raise ValueError(f"staleness is a number of merges >= 0, got {staleness}")
        self.path, self.staleness = Path(path) if path else None, staleness
        if self.path is not None and self.path.exists():  # a restart: the file wins over ``initial``
            blob = torch.load(self.path, weights_only=True)
            self.state, self.version = blob["state"], int(blob["version"])
        elif initial is not None:
            self.state, self.version = {k: v.detach().clone() for k, v in initial.items()}, 0
            self._save()
        else:
            raise ValueError(f"a merger needs an initial state or a saved one (nothing at {self.path})")

    def pull(self) -> tuple[State, int]:
        return self.state, self.version

    def push(self, delta: State, base_version: int) -> int | None:
        """Add ``delta`` (computed on version ``base_version``); the new version, or None when the base is
        more than ``staleness`` merges old."""
        if base_version > self.version:
            raise ValueError(f"base version {base_version} is newer than the merger's {self.version}")
        if self.version - base_version > self.staleness:
            return None
        if delta.keys() != self.state.keys():
            raise ValueError(
                f"delta keys differ from the state's: {sorted(delta.keys() ^ self.state.keys())}"
            )
        self.state = {k: v + delta[k].to(v.dtype) for k, v in self.state.items()}
        self.version += 1
        self._save()
        return self.version

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save({"state": self.state, "version": self.version}, tmp)
        os.replace(tmp, self.path)  # a crash mid-write leaves the previous merge, never half of one


class MergerClient(Protocol):
    """What a replica needs of a merger: a ``Merger`` in-process, or ``RayMerger`` across nodes."""

    def pull(self) -> tuple[State, int]: ...

    def push(self, delta: State, base_version: int) -> int | None: ...


class RayMerger:
    """A ``Merger`` in a named Ray actor, shared by the replicas on every node. Ray restarts the actor after
    a failure with its first arguments, so it reloads its file: give it a ``path`` on storage that outlives
    the node."""

    def __init__(self, handle: Any):
        self.handle = handle

    @classmethod
    def start(cls, name: str, initial: State | None = None, path: str | Path | None = None,
              staleness: int = 4) -> RayMerger:  # fmt: skip
        """The merger called ``name``, made if no actor has that name yet."""
        import ray

        if path is not None and initial is not None:
            if not Path(path).exists():
                Merger(initial, path, staleness)  # writes the file the actor, and any restart of it, loads
            initial = None  # a large argument lives in the object store, and Ray frees it before a restart
        actor = ray.remote(max_restarts=-1, max_task_retries=-1)(Merger)
        return cls(actor.options(name=name, get_if_exists=True, num_cpus=0).remote(initial, path, staleness))

    @classmethod
    def connect(cls, name: str) -> RayMerger:
        import ray

        return cls(ray.get_actor(name))

    def pull(self) -> tuple[State, int]:
        import ray

        return ray.get(self.handle.pull.remote())

    def push(self, delta: State, base_version: int) -> int | None:
        import ray

        return ray.get(self.handle.push.remote(delta, base_version))


@dataclass
class Pending:
    """One feedback since the last accepted push (replayed when a push comes back stale)."""

    task: Any
    decision: Any
    score: float
    baseline: float | None


class FederatedReplica:
    """One replica's agent, learning locally and merging through ``merger`` every ``sync_every`` updates."""

    def __init__(
        self,
        agent: MetaBraider,
        merger: MergerClient,
        sync_every: int = 8,
        refresh_s: float | None = None,
        max_retries: int = 8,
    ):
        self.agent, self.merger, self.sync_every, self.max_retries = agent, merger, sync_every, max_retries
        self.refresh_s = refresh_s  # a replica that gets few ratings still takes the others' this often
        self.pulled_at = 0.0
        self.pending: list[Pending] = []
        self.base: State = {}
        self.base_version = -1
        self.pull()  # a (re)started replica begins from every merged update

    def pull(self) -> int:
        """Take the merged state as this replica's parameters and base."""
        state, version = self.merger.pull()
        self.agent.net.load_state_dict(state)  # in place: the online optimiser keeps its parameters
        self.base = {k: v.detach().clone() for k, v in self.agent.net.state_dict().items()}
        self.base_version, self.pulled_at = version, time.monotonic()
        return version

    def refresh(self) -> int:
        """Take the others' merged updates now: merging this replica's pending ones first, never dropping them."""
        return self.sync() if self.pending else self.pull()

    def maybe_refresh(self) -> None:
        """``refresh`` when ``refresh_s`` have passed since the last pull (a decision calls this: cheap)."""
        if self.refresh_s is not None and time.monotonic() - self.pulled_at >= self.refresh_s:
            self.refresh()

    def decide(self, task: Any, **constraints: Any) -> Any:
        return self.agent(task, **constraints)

    def learn(self, task: Any, decision: Any, score: float, baseline: float | None = None) -> float:
        """One local update from a raw ``score``; merges when ``sync_every`` are pending."""
        loss = self.agent.learn_from_feedback(task, decision, score=score, baseline=baseline)
        self.pending.append(Pending(task, decision, score, baseline))
        if len(self.pending) >= self.sync_every:
            self.sync()
        return loss

    def sync(self) -> int:
        """Send the pending delta; on a stale base, pull and replay the pending feedback, then send again."""
        for _ in range(self.max_retries):
            now = self.agent.net.state_dict()
            delta = {k: now[k] - self.base[k] for k in self.base}
            if self.merger.push(delta, self.base_version) is not None:
                self.pending.clear()
                return self.pull()
            self.pull()
            for p in self.pending:
                self.agent.learn_from_feedback(p.task, p.decision, score=p.score, baseline=p.baseline)
        raise RuntimeError(
            f"the merger refused {self.max_retries} pushes as stale; raise its staleness bound"
        )


def initial_state(agent: MetaBraider) -> State:
    """The state a merger starts from: the agent's decision net."""
    return {k: v.detach().clone() for k, v in agent.net.state_dict().items()}
