"""The meta-braider as a service keeps it: one lock around deciding and learning, and every feedback update
saved (atomically) beside the pretrained checkpoint it started from, so learning survives a restart. Replicas
sharing a state dir take each other's updates: each learns under a file lock, from the latest saved state.
Replicas on nodes that share no disk learn federated instead (``OnlineMeta.federated``, ``meta.federated``):
each from its own feedback, merging through a merger actor that keeps the merged state."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meta.federated import FederatedReplica
    from serve.config import FederationConfig


class OnlineMeta:
    def __init__(
        self,
        agent: Any,
        save_to: str | Path | None = None,
        source: str | None = None,
        replica: FederatedReplica | None = None,
    ):
        self.agent, self.save_to, self.source = agent, Path(save_to) if save_to else None, source
        self.replica = replica  # federated: shared updates go through the merger, not a state file
        self.lock = threading.RLock()
        self.updates = 0
        self._stamp: tuple[int, int] | None = None  # (inode, mtime_ns) of the saved state this agent holds

    @classmethod
    def open(cls, checkpoint: str | Path, state_dir: str | Path) -> OnlineMeta:
        """The agent learned online from ``checkpoint`` if its state is in ``state_dir``, else ``checkpoint``."""
        from meta.agent import MetaBraider

        checkpoint, state = Path(checkpoint), Path(state_dir) / "meta-braider.online.pt"
        if not checkpoint.exists():
            raise FileNotFoundError(
                f"no meta-braider checkpoint at {checkpoint}; run `braid meta train` first"
            )
        origin = {"source": str(checkpoint.resolve()), "source_mtime": checkpoint.stat().st_mtime}
        side = state.with_suffix(".json")
        resumed = state.exists() and side.exists() and json.loads(side.read_text()).get("origin") == origin
        online = cls(MetaBraider.load(state if resumed else checkpoint), state, json.dumps(origin))
        online.updates = json.loads(side.read_text())["updates"] if resumed else 0
        online._stamp = _stamp(state) if resumed else None
        return online

    @classmethod
    def federated(cls, checkpoint: str | Path, config: FederationConfig, state_dir: str | Path) -> OnlineMeta:
        """The agent from ``checkpoint``, one replica of a federation: it starts from the merged state (the
        merger actor is made by the first replica, from this checkpoint) and merges every ``sync_every``
        updates. Needs Ray (a Serve replica runs in it)."""
        from meta.agent import MetaBraider
        from meta.federated import FederatedReplica, RayMerger, initial_state

        agent = MetaBraider.load(checkpoint)
        path = config.path or Path(state_dir) / "meta-braider.merged.pt"
        merger = RayMerger.start(config.merger, initial_state(agent), path, config.staleness)
        return cls(agent, replica=FederatedReplica(agent, merger, config.sync_every, config.refresh_s))

    def decide(self, task: Any, user: str | None = None, **constraints: Any):
        with self.lock:
            self._refresh()
            return self.agent.forward_with_explanation(task, user=user, **constraints)

    def probability(self, task: Any, decision: Any) -> float:
        """The policy's probability of ``decision`` for ``task`` now (``MetaBraider.probability``)."""
        with self.lock:
            self._refresh()
            return self.agent.probability(task, decision)

    def learn(
        self, task: Any, decision: Any, score: float, baseline: float | None, user: str | None = None
    ) -> float:
        """One update from a raw ``score`` (the coordinator passes the prediction moved by the rating); with
        a ``user``, that user's correction learns instead of the shared policy."""
        if self.replica is not None and user is None:
            with self.lock:
                self.updates += 1
                return self.replica.learn(task, decision, score, baseline)
        with self.lock, self._file_lock():
            self._refresh()
            loss = self.agent.learn_from_feedback(task, decision, score=score, baseline=baseline, user=user)
            self.updates += 1
            self._save()
            return loss

    def _refresh(self) -> None:
        if self.replica is not None:
            self.replica.maybe_refresh()
            return
        self._refresh_file()

    def _refresh_file(self) -> None:
        """Take the saved state when another process saved since (same origin only): in place, so the
        feedback learner's optimizer keeps pointing at the agent's parameters."""
        from meta.agent import MetaBraider

        if self.save_to is None or not self.save_to.exists():
            return
        stamp, side = _stamp(self.save_to), self.save_to.with_suffix(".json")
        if stamp == self._stamp or not side.exists():
            return
        meta = json.loads(side.read_text())
        if meta.get("origin") == (json.loads(self.source) if self.source else None):
            self.agent.load_state_dict(MetaBraider.load(self.save_to).state_dict())
            self.updates = meta["updates"]
        self._stamp = stamp

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        if self.save_to is None:
            yield
            return
        import fcntl

        self.save_to.parent.mkdir(parents=True, exist_ok=True)
        with open(self.save_to.with_suffix(".lock"), "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
            yield

    def _save(self) -> None:
        if self.save_to is None:
            return
        self.save_to.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.save_to.with_suffix(".tmp")
        self.agent.save(tmp)
        os.replace(tmp, self.save_to)  # a crash mid-save leaves the previous state, never half a file
        self._stamp = _stamp(self.save_to)
        side = {"origin": json.loads(self.source) if self.source else None, "updates": self.updates}
        self.save_to.with_suffix(".json").write_text(json.dumps(side))


def _stamp(path: Path) -> tuple[int, int]:
    """Which save a file is: every save is a new file (os.replace), and mtime alone ticks coarsely."""
    st = path.stat()
    return st.st_ino, st.st_mtime_ns
