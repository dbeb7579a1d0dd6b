"""The runner seam: a new placement is one ``MemberRunner``, and the braid built on it is the local braid."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading

import pytest
import torch

from braid import BraidConfig, BraidedLLM
from braid.runner import PLACEMENTS, MemberRunner
from tests.conftest import PROSE, randomize_fusion


# -- a toy placement: each member's forward on its own thread, meeting the fusion through queues ----------
class ThreadRunner(MemberRunner):
    def run(self, braid, inputs, caches, fuse, output_hidden_states=False):
        running = [m for m, x in enumerate(inputs) if x is not None]
        states: queue.Queue = queue.Queue()
        replies = {m: queue.Queue() for m in running}
        results: list = [None] * len(braid.models)

        def park(m: int, points: list[int]):
            def edit(h: torch.Tensor) -> torch.Tensor:
                for _ in points:  # the fusion meets this member's points in order
                    states.put((m, h))
                    update = replies[m].get(timeout=60)
                    h = h if update is None else h + update
                return h

            return edit

        def work(m: int) -> None:
            member, at = braid.models[m], braid.lockstep.points_at(m)
            with member.inject({layer: park(m, points) for layer, points in at.items()}):
                cache = None if caches is None else caches[m]
                results[m] = member.forward(**inputs[m], past_key_values=cache, use_cache=cache is not None)

        threads = [threading.Thread(target=work, args=(m,), daemon=True) for m in running]
        for t in threads:
            t.start()
        for p in range(braid.lockstep.num_points):
            got: list = [None] * len(braid.models)
            for _ in running:
                m, h = states.get(timeout=60)
                got[m] = h
            for m, update in enumerate(fuse(p, got)):
                if m in replies:
                    replies[m].put(update)
        for t in threads:
            t.join(timeout=60)
        return results


# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("strategy", "layers"), [("attention", [0, 1]), ("calm", [1]), ("router", None)])
def test_a_toy_placement_equals_the_local_braid(trio, strategy, layers):
    config = BraidConfig(model_configs=trio, fusion_strategy=strategy, fusion_layers=layers, fusion_dim=16)
    local = BraidedLLM(config=config)
    randomize_fusion(local, seed=5)
    toy = BraidedLLM(config=config, models=list(local.models), runner=ThreadRunner())
    toy.fusion_modules.load_state_dict(local.fusion_modules.state_dict())
    enc = local.anchor_model.encode(PROSE[:3])
    with torch.no_grad():
        want = local(enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        got = toy(enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    assert (got - want).abs().max() < 1e-5
    prompt = "models exchange hidden"  # incremental decoding: member and fusion caches through the runner
    assert toy.generate(prompt, max_new_tokens=12) == local.generate(prompt, max_new_tokens=12)


def test_unknown_placement_names_the_valid_ones(trio):
    with pytest.raises(ValueError, match="unknown placement 'gpu'; valid: local, ray"):
        BraidedLLM(trio, placement="gpu")
    assert set(PLACEMENTS) == {"local", "ray"}


def test_the_core_imports_no_layer_above_it():
    """`import braid` and a braid's whole forward / generate path load no other top-level package."""
    probe = (
        "import sys, braid, braid.braided, braid.generation, braid.train, braid.runner; "
        "print(sorted(m for m in ('cluster', 'tune', 'meta', 'serve', 'cli', 'memory', 'tools', 'ray') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
