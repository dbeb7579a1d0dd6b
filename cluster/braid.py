"""``RayBraidedLLM``: a braid replica on a Ray cluster, driven from here with the local braid's interface.

One placement group per replica (a bundle per member, then one for the fusion actor). The driver makes one
Ray call per request: ``forward`` returns logits, ``generate`` is one streaming call whose text pieces
arrive as they are produced. Hidden states never pass through Ray: they cross the leader's channels.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from braid.braided import CONFIG_FILE, FORMAT, FUSION_FILE, BraidOutput, causal_lm_loss
from braid.config import BraidConfig
from braid.generation import SamplingParams
from braid.model_wrapper import load_tokenizer
from cluster.actors import fusion_actor_class
from cluster.placement import RayPlacement


def wait_placed(pg: Any, bundles: list[dict[str, float]], timeout_s: float) -> bool:
    """Wait for a placement group that fits the cluster but not yet its free resources (other work holds
    them), saying so every 30 s rather than waiting in silence."""
    import logging
    import time

    import ray

    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        ready, _ = ray.wait([pg.ready()], timeout=min(30.0, left))
        if ready:
            return True
        logging.getLogger(__name__).warning(
            "waiting for free resources for the braid's bundles %s (%.0fs left of ready_timeout_s)",
            bundles,
            left,
        )
    return False


class RayBraidedLLM:
    """Same forward / generate / save_pretrained as ``BraidedLLM``; ``shutdown()`` (or ``with``) frees it."""

    def __init__(self, config: BraidConfig, placement: RayPlacement | None = None):
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        self.config, self.placement = config, placement or RayPlacement()
        self.tokenizer = load_tokenizer(config.model_configs[config.anchor].model_name)
        if not ray.is_initialized():
            ray.init(configure_logging=False, log_to_driver=False)
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0.0)
        self.placement = self.placement.resolved(len(config.model_configs), resources.get("CPU", 0.0))
        bundles = self.placement.bundles(len(config.model_configs), gpus)
        self.placement.check_fits(bundles, [n["Resources"] for n in ray.nodes() if n.get("Alive")])
        self.pg = placement_group(bundles, strategy=self.placement.strategy)
        ready = wait_placed(self.pg, bundles, self.placement.ready_timeout_s)
        if not ready:
            remove_placement_group(self.pg)
            raise RuntimeError(
                f"cannot place the braid: {len(bundles)} bundles {bundles} with strategy "
                f"{self.placement.strategy} did not fit within {self.placement.ready_timeout_s:g}s "
                f"(cluster resources: {ray.cluster_resources()})"
            )
        self.leader = fusion_actor_class().options(
            num_cpus=bundles[-1].get("CPU", 0), num_gpus=bundles[-1].get("GPU", 0),
            scheduling_strategy=PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=len(bundles) - 1),
        ).remote(config.model_dump_json(), self.placement.model_dump_json(), self.pg, gpus)  # fmt: skip
        self.ray_calls = 0
        try:
            self.nodes = self._call("ready", timeout=self.placement.ready_timeout_s)
        except Exception:
            self.shutdown()
            raise

    def _call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        import ray

        self.ray_calls += 1
        return ray.get(getattr(self._live_leader(), method).remote(*args), timeout=timeout)

    def _live_leader(self) -> Any:
        if getattr(self, "leader", None) is None:
            raise RuntimeError(
                "this Ray braid was shut down; build a new one (BraidedLLM(..., placement='ray'))"
            )
        return self.leader

    # -- the local braid's interface ----------------------------------------------------------------------
    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, labels: Any = None
    ) -> BraidOutput:
        logits, _ = self._call("forward", input_ids, attention_mask, None)
        loss = None if labels is None else causal_lm_loss(logits, labels)
        return BraidOutput(logits=logits, loss=loss)

    __call__ = forward

    def generate(
        self, prompt: str, max_new_tokens: int = 200, temperature: float = 0.0, top_p: float = 1.0,
        top_k: int | None = None, stop: str | list[str] | None = None, stream: bool = False, seed: int | None = None,
    ) -> str | Iterator[str]:  # fmt: skip
        """``BraidedLLM.generate``'s signature; one streaming Ray call per request."""
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                                stop=stop, seed=seed)  # bad input fails here, not remotely  # fmt: skip
        pieces = self._stream(prompt, params)
        return pieces if stream else "".join(pieces)

    def _stream(self, prompt: str, params: SamplingParams) -> Iterator[str]:
        import ray

        method = self._live_leader().generate
        if self.placement.stream_buffer is not None:
            method = method.options(_generator_backpressure_num_objects=self.placement.stream_buffer)
        self.ray_calls += 1
        for ref in method.remote(prompt, params.model_dump()):
            yield ray.get(ref)

    def save_pretrained(self, directory: str | Path) -> None:
        """The same files as ``BraidedLLM.save_pretrained``, written here (the fusion weights come over Ray)."""
        from safetensors.torch import save_file

        from braid.braided import member_paths_resolved

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state, signature = self._call("fusion_state")
        config = member_paths_resolved(self.config)
        (directory / CONFIG_FILE).write_text(config.model_dump_json(indent=2))
        meta = {"format": FORMAT, "signature": json.dumps(signature, sort_keys=True)}
        save_file({k: v.contiguous() for k, v in state.items()}, str(directory / FUSION_FILE), metadata=meta)

    def load_fusion_layers(self, path: str | Path) -> None:
        self._call("load_fusion", Path(path).read_bytes())

    @classmethod
    def from_pretrained(cls, directory: str | Path, placement: RayPlacement | None = None) -> RayBraidedLLM:
        directory = Path(directory)
        config = BraidConfig.model_validate_json((directory / CONFIG_FILE).read_text())
        braid = cls(config, placement)
        braid.load_fusion_layers(directory / FUSION_FILE)
        return braid

    # -- cluster facts and lifetime -----------------------------------------------------------------------
    def member_handles(self) -> list[Any]:
        return self._call("member_handles")

    def decode_seconds(self, prompt_ids: torch.Tensor, tokens: list[int]) -> float:
        """Leader-side seconds per token for a fixed token stream (benchmarks)."""
        return self._call("decode_seconds", prompt_ids, tokens)

    def recoveries(self) -> int:
        return self._call("recoveries")

    def shutdown(self) -> None:
        """Kill the members and the leader and free the placement group; safe to call twice."""
        import ray
        from ray.util.placement_group import remove_placement_group

        if getattr(self, "leader", None) is not None:
            # A dead leader took its members with it (they are its children), so its failure is fine here.
            with contextlib.suppress(Exception):
                ray.get(self.leader.shutdown.remote(), timeout=30)
            ray.kill(self.leader)
            self.leader = None
        if getattr(self, "pg", None) is not None:
            remove_placement_group(self.pg)
            self.pg = None

    def __enter__(self) -> RayBraidedLLM:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
