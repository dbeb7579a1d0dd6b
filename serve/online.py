"""The meta-braider as a service keeps it: one lock around deciding and learning, and every feedback update
saved (atomically) beside the pretrained checkpoint it started from, so learning survives a restart."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


class OnlineMeta:
    def __init__(self, agent: Any, save_to: str | Path | None = None, source: str | None = None):
        self.agent, self.save_to, self.source = agent, Path(save_to) if save_to else None, source
        self.lock = threading.RLock()
        self.updates = 0

    @classmethod
    def open(cls, checkpoint: str | Path, state_dir: str | Path) -> OnlineMeta:
        """The agent learned online from ``checkpoint`` if its state is in ``state_dir``, else ``checkpoint``."""
        from braid.meta.agent import MetaBraider

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
        return online

    def decide(self, task: Any, **constraints: Any):
        with self.lock:
            return self.agent.forward_with_explanation(task, **constraints)

    def learn(self, task: Any, decision: Any, performance: float, baseline: float | None) -> float:
        with self.lock:
            loss = self.agent.learn_from_feedback(task, decision, performance, baseline)
            self.updates += 1
            self._save()
            return loss

    def _save(self) -> None:
        if self.save_to is None:
            return
        self.save_to.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.save_to.with_suffix(".tmp")
        self.agent.save(tmp)
        os.replace(tmp, self.save_to)  # a crash mid-save leaves the previous state, never half a file
        side = {"origin": json.loads(self.source) if self.source else None, "updates": self.updates}
        self.save_to.with_suffix(".json").write_text(json.dumps(side))
