"""Braids by key, built on demand and cached: what the coordinator generates with.

A key is either a pinned braid's name or a decision's structure (``anchor|a,b|strategy|points|placement|dim``),
so any process (a Serve replica) can build the braid from the key alone. A decided braid takes its fusion
weights from the best sweep trial with the same structure when the records have one; otherwise it starts
untrained, which by the identity-at-start rule is exactly its anchor.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEFAULT = "default"


class GenParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    max_new_tokens: int = Field(64, ge=1)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: tuple[str, ...] = ()
    seed: int | None = None


class Generated(BaseModel):
    text: str
    prompt_tokens: int
    completion_tokens: int


def decision_key(decision: Any) -> str:
    d = decision
    return f"{d.anchor}|{','.join(sorted(d.members))}|{d.strategy}|{d.fusion_points}|{d.placement}|{d.fusion_dim}"


def decision_from_key(key: str):
    from braid.meta.decision import BraidingDecision

    try:
        anchor, members, strategy, points, placement, dim = key.split("|")
        return BraidingDecision(
            members=tuple(members.split(",")), anchor=anchor, strategy=strategy, fusion_points=int(points),
            placement=placement, fusion_dim=int(dim), lr=1e-3, steps=1, temperature=0.0,
        )  # fmt: skip
    except ValueError as e:
        raise ValueError(
            f"not a braid key (anchor|members|strategy|points|placement|dim): {key!r}: {e}"
        ) from None


class BraidFactory:
    """Builds the braid a key names: a pinned braid (save_pretrained dir), the default braid object, or a
    decision over the meta-braider's pool paths with sweep-trained fusion weights where they exist."""

    def __init__(
        self,
        paths: dict[str, str] | None = None,
        pinned: dict[str, str] | None = None,
        records: list[Any] | None = None,
        default: Any = None,
    ):
        self.paths, self.pinned, self.records, self.default = (
            paths or {},
            pinned or {},
            records or [],
            default,
        )

    def known(self, key: str) -> bool:
        return key in self.pinned or (key == DEFAULT and self.default is not None) or "|" in key

    def build(self, key: str) -> tuple[Any, dict]:
        from braid import BraidedLLM

        if key == DEFAULT and self.default is not None:
            return self.default, {"source": "braided_model"}
        if key in self.pinned:
            return BraidedLLM.from_pretrained(self.pinned[key]).eval(), {"source": self.pinned[key]}
        decision = decision_from_key(key)
        braided = BraidedLLM(config=decision.to_braid_config(self.paths))
        trial = self._trained(decision, list(braided.config.fusion_layers))
        if trial is not None:
            braided.load_fusion_layers(Path(trial.checkpoint) / "fusion.safetensors")
        return braided.eval(), {"source": "decision", "trained_by_trial": trial.trial_id if trial else None}

    def _trained(self, decision: Any, layers: list[int]):
        """The best-scoring sweep trial with this structure and a checkpoint on disk."""
        same = [
            r for r in self.records
            if r.checkpoint and (Path(r.checkpoint) / "fusion.safetensors").exists()
            and r.config.anchor == decision.anchor and set(r.config.members) == set(decision.members)
            and r.config.strategy == decision.strategy and list(r.config.fusion_layers) == layers
            and r.config.fusion_dim == decision.fusion_dim
        ]  # fmt: skip
        return max(same, key=lambda r: r.metrics["score"], default=None)


class LocalBraids:
    """An LRU of built braids in this process. One generation at a time per braid (a braid's hooks and caches
    belong to one forward), always computed on that braid's own thread: torch's intra-op (OpenMP) pool belongs
    to the calling thread, and hopping between request threads leaves idle pools spinning against the busy one."""

    def __init__(self, factory: BraidFactory, capacity: int = 2):
        self.factory, self.capacity = factory, capacity
        self._cache: OrderedDict[str, _Slot] = OrderedDict()
        self._lock = threading.Lock()

    def known(self, key: str) -> bool:
        return self.factory.known(key)

    def get(self, key: str) -> _Slot:
        with self._lock:  # building under the lock: two requests for a new key build it once
            if key not in self._cache:
                self._cache[key] = _Slot(*self.factory.build(key))
                while len(self._cache) > self.capacity:
                    # an evicted braid may still be generating: its thread ends with its last reference
                    self._cache.popitem(last=False)
            self._cache.move_to_end(key)
            return self._cache[key]

    def info(self, key: str) -> dict:
        return self.get(key).info

    def generate(self, key: str, prompt: str, params: GenParams) -> Generated:
        slot = self.get(key)
        with slot.lock:
            return slot.run(generate, slot.braided, prompt, params)

    def stream(self, key: str, prompt: str, params: GenParams) -> Iterator[str]:
        slot, done = self.get(key), object()
        with slot.lock:
            pieces = slot.run(stream, slot.braided, prompt, params)
            while (piece := slot.run(next, pieces, done)) is not done:
                yield piece

    def planner_context(self, key: str) -> tuple[Any, Any]:
        slot = self.get(key)

        def plan_generate(prompt: str, max_new_tokens: int) -> str:
            with slot.lock:
                return slot.run(lambda: slot.braided.generate(prompt, max_new_tokens=max_new_tokens))

        return slot.braided.tokenizer, plan_generate


class _Slot:
    def __init__(self, braided: Any, info: dict):
        from concurrent.futures import ThreadPoolExecutor

        self.braided, self.info, self.lock = braided, info, threading.Lock()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="braid")

    def run(self, fn: Any, *args: Any) -> Any:
        return self._thread.submit(fn, *args).result()


def stream(braided: Any, prompt: str, params: GenParams) -> Iterator[str]:
    from serve.prompt import fit_prompt

    prompt = fit_prompt(braided, prompt, params.max_new_tokens)
    yield from braided.generate(
        prompt, max_new_tokens=params.max_new_tokens, temperature=params.temperature, top_p=params.top_p,
        stop=list(params.stop) or None, stream=True, seed=params.seed,
    )  # fmt: skip


def generate(braided: Any, prompt: str, params: GenParams) -> Generated:
    from serve.prompt import fit_prompt

    text = "".join(stream(braided, prompt, params))
    count = lambda s: len(braided.tokenizer(s)["input_ids"]) if s else 0  # noqa: E731
    return Generated(
        text=text,
        prompt_tokens=count(fit_prompt(braided, prompt, params.max_new_tokens)),
        completion_tokens=count(text),
    )
