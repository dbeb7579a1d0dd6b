"""Braids by key, built on demand and cached: what the coordinator generates with.

A key is either a pinned braid's name or a braid's ``BraidSpec.key()`` (``anchor|a,b|strategy|points|placement|dim``),
so any process (a Serve replica) can build the braid from the key alone. A decided braid takes its fusion
weights from the best sweep trial with the same structure when the records have one; otherwise it starts
untrained, which by the identity-at-start rule is exactly its anchor.

A client may name a structure key itself, so what a key may ask for is the operator's choice
(``BraidPolicy``): by default only the meta-braider's own grid; with ``custom`` any key within the limits,
checked before anything is built. Builds run one at a time (``max_builds``) without holding up requests for
braids already built.

A decision the meta-braider refined with a searched architecture (``meta.architectures``) has the key
``<grid key>@<digest>``; the factory builds it from the agent's architecture library, with the fusion weights
of the search trial that measured it when the records hold its checkpoint.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from braid.sampling import SamplingParams
from braid.spec import BraidSpec

DEFAULT = "default"


class Generated(BaseModel):
    text: str
    prompt_tokens: int
    completion_tokens: int


class BraidLimits(BaseModel):
    """Caps on a client-named braid structure (serve.yaml ``braid_policy.limits``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_members: int = Field(4, ge=2)
    max_fusion_points: int = Field(4, ge=0)
    max_fusion_dim: int = Field(512, ge=1)
    max_memory_mb: float = Field(4096.0, gt=0, description="members' weights plus a bound on fusion's")


class BraidPolicy(BaseModel):
    """Which structure keys clients may name: the meta-braider's grid only, or (``custom``) any within limits."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    custom: bool = Field(False, description="allow structure keys outside the meta-braider's grid")
    limits: BraidLimits = BraidLimits()
    max_builds: int = Field(1, ge=1, description="braids built at once; further builds wait")
    build_wait_s: float = Field(60.0, gt=0, description="how long a build waits for a slot before 503")


class BraidFactory:
    """Builds the braid a key names: a pinned braid (save_pretrained dir), the default braid object, or a
    decision over the meta-braider's pool paths with sweep-trained fusion weights where they exist."""

    def __init__(
        self,
        paths: dict[str, str] | None = None,
        pinned: dict[str, str] | None = None,
        records: list[Any] | None = None,
        default: Any = None,
        grid: frozenset[str] | None = None,
        policy: BraidPolicy | None = None,
        architectures: Any = None,
    ):
        self.paths, self.pinned, self.records, self.default = (
            paths or {},
            pinned or {},
            records or [],
            default,
        )
        self.grid, self.policy = grid, policy or BraidPolicy()
        self.architectures = architectures  # a meta.architectures.ArchitectureLibrary, or None

    def searched(self, key: str) -> Any:
        """The searched architecture an ``@`` key names, or None."""
        return self.architectures.by_key(key) if self.architectures is not None else None

    def known(self, key: str) -> bool:
        return key in self.pinned or (key == DEFAULT and self.default is not None) or "|" in key

    def check(self, key: str) -> None:
        """Raise ValueError (HTTP 400) unless a structure key is one this server builds: in the meta-braider's
        grid, or with ``policy.custom``, over known members and within the limits. Reads no weights."""
        if "|" not in key or key in self.pinned or (self.grid is not None and key in self.grid):
            return
        if "@" in key:
            if self.searched(key) is None:
                raise ValueError(
                    f"braid key {key!r} names no searched architecture this server's meta-braider has"
                )
            return
        if not self.policy.custom:
            raise ValueError(
                f"braid key {key!r} is not offered by this server: name 'auto', a pinned braid, or a structure "
                "from the meta-braider's grid (braid_policy.custom: true in serve.yaml opens others, within limits)"
            )
        check_limits(BraidSpec.parse(key), self.paths, self.policy.limits)

    def build(self, key: str) -> tuple[Any, dict]:
        from braid import BraidedLLM
        from braid.checkpoint import fusion_path

        if key == DEFAULT and self.default is not None:
            return self.default, {"source": "braided_model"}
        if key in self.pinned:
            return BraidedLLM.from_pretrained(self.pinned[key]).eval(), {"source": self.pinned[key]}
        if (choice := self.searched(key)) is not None:
            braided, source = BraidedLLM(config=choice.to_config(self.paths)), "searched architecture"
            trial = self._measured(choice)
        else:
            spec = BraidSpec.parse(key)
            braided, source = BraidedLLM(config=spec.to_config(self.paths)), "decision"
            trial = self._trained(spec, list(braided.config.fusion_layers))
        if trial is not None:
            braided.load_fusion_layers(fusion_path(trial.checkpoint))
        return braided.eval(), {"source": source, "trained_by_trial": trial.trial_id if trial else None}

    def _measured(self, choice: Any):
        """The best-scoring search trial with a checkpoint on disk that trained exactly this architecture."""
        from braid.checkpoint import has_fusion

        same = [r for r in self.records if has_fusion(r.checkpoint) and r.config == choice]
        return max(same, key=lambda r: r.metrics["score"], default=None)

    def _trained(self, spec: BraidSpec, layers: list[int]):
        """The best-scoring sweep trial with a checkpoint on disk that trained this braid: the same members,
        anchor, strategy, width and fusion blocks (however its points and placement were written)."""
        from braid.checkpoint import has_fusion

        def trained_this(c: Any) -> bool:
            return (c.anchor, set(c.members), c.strategy, c.fusion_dim, list(c.fusion_layers)) == (
                spec.anchor, set(spec.members), spec.strategy, spec.fusion_dim, layers
            )  # fmt: skip

        same = [r for r in self.records if has_fusion(r.checkpoint) and trained_this(r.config)]
        return max(same, key=lambda r: r.metrics["score"], default=None)


def check_limits(decision: BraidSpec, paths: dict[str, str], limits: BraidLimits) -> None:
    """ValueError naming the first limit a decided structure exceeds (or a member with no path)."""
    if missing := sorted(set(decision.members) - set(paths)):
        raise ValueError(f"no such members {missing}; known: {sorted(paths)}")
    for name, value, cap in (
        ("members", len(decision.members), limits.max_members),
        ("fusion_points", decision.fusion_points, limits.max_fusion_points),
        ("fusion_dim", decision.fusion_dim, limits.max_fusion_dim),
    ):
        if value > cap:
            raise ValueError(f"{name} {value} exceeds this server's limit of {cap}")
    mb = memory_estimate_mb(decision, paths)
    if mb > limits.max_memory_mb:
        raise ValueError(
            f"the braid needs about {mb:,.0f} MB, over this server's limit of {limits.max_memory_mb:,.0f}"
        )


def memory_estimate_mb(decision: Any, paths: dict[str, str]) -> float:
    """The members' weights on disk plus a bound on the fusion modules (float32; per point and member, four
    fusion_dim x hidden maps and a fusion_dim x fusion_dim one), from files alone."""
    import json

    weights = hidden = 0.0
    for m in decision.members:
        path = Path(paths[m])
        weights += sum(f.stat().st_size for f in path.glob("*.safetensors")) if path.is_dir() else 0
        config = path / "config.json"
        hidden += json.loads(config.read_text()).get("hidden_size", 0) if config.is_file() else 0
    d = decision.fusion_dim
    fusion = 4 * max(decision.fusion_points, 1) * len(decision.members) * (4 * d * hidden + d * d)
    return (weights + fusion) / 2**20


class BuildsBusy(RuntimeError):
    """No build slot came free in time (HTTP 503)."""


class LocalBraids:
    """An LRU of built braids in this process. One generation at a time per braid (a braid's hooks and caches
    belong to one forward), always computed on that braid's own thread: torch's intra-op (OpenMP) pool belongs
    to the calling thread, and hopping between request threads leaves idle pools spinning against the busy one."""

    def __init__(self, factory: BraidFactory, capacity: int = 2):
        self.factory, self.capacity = factory, capacity
        self._cache: OrderedDict[str, _Slot] = OrderedDict()
        self._lock = threading.Lock()  # guards the cache only: never held while building
        self._key_locks: dict[str, threading.Lock] = {}  # one build per key
        self._builds = threading.BoundedSemaphore(factory.policy.max_builds)

    def known(self, key: str) -> bool:
        return self.factory.known(key)

    def pinned_names(self) -> list[str]:
        return sorted(self.factory.pinned)

    def check(self, key: str) -> None:
        self.factory.check(key)

    def get(self, key: str) -> _Slot:
        with self._lock:
            if (slot := self._cached(key)) is not None:
                return slot
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # two requests for a new key build it once
            with self._lock:
                if (slot := self._cached(key)) is not None:
                    return slot
            if not self._builds.acquire(timeout=self.factory.policy.build_wait_s):
                raise BuildsBusy(
                    f"other braids are being built; try again (waited {self.factory.policy.build_wait_s:g}s)"
                )
            try:
                slot = _Slot(*self.factory.build(key))
            finally:
                self._builds.release()
            with self._lock:
                self._cache[key] = slot
                self._key_locks.pop(key, None)
                while len(self._cache) > self.capacity:
                    # an evicted braid may still be generating: its thread ends with its last reference
                    self._cache.popitem(last=False)
                return slot

    def _cached(self, key: str) -> _Slot | None:
        slot = self._cache.get(key)
        if slot is not None:
            self._cache.move_to_end(key)
        return slot

    def info(self, key: str) -> dict:
        return self.get(key).info

    def generate(self, key: str, prompt: str, params: SamplingParams) -> Generated:
        slot = self.get(key)
        with slot.lock:
            return slot.run(generate, slot.braided, prompt, params)

    def stream(self, key: str, prompt: str, params: SamplingParams) -> Iterator[str]:
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


def stream(braided: Any, prompt: str, params: SamplingParams) -> Iterator[str]:
    from serve.prompt import fit_prompt

    prompt = fit_prompt(braided, prompt, params.max_new_tokens)
    yield from braided.generate(prompt, stream=True, **params.model_dump())


def generate(braided: Any, prompt: str, params: SamplingParams) -> Generated:
    from serve.prompt import fit_prompt

    text = "".join(stream(braided, prompt, params))
    count = lambda s: len(braided.tokenizer(s)["input_ids"]) if s else 0  # noqa: E731
    return Generated(
        text=text,
        prompt_tokens=count(fit_prompt(braided, prompt, params.max_new_tokens)),
        # re-tokenising the text can count more tokens than were generated (12 for max_tokens=10)
        completion_tokens=min(count(text), params.max_new_tokens),
    )
