"""A client names a braid structure: only the operator's choices are built, and nothing huge ever is."""

from __future__ import annotations

import time

import pytest

from serve.braids import BraidLimits, BraidPolicy
from tests.security.conftest import call

HUGE = "prose-llama|arith-gpt2,prose-llama|learned_weighted|1|early|2097152"


def chat(server, model: str):
    body = {"model": model, "messages": [{"role": "user", "content": "2 + 2"}], "max_tokens": 2,
            "braid": {"use_tools": False, "use_memory": False}}  # fmt: skip
    return call(server, "POST", "/v1/chat/completions", body)


def test_a_key_outside_the_grid_is_400_before_anything_is_built(server):
    built = len(server.coordinator.braids._cache)
    start = time.perf_counter()
    r = chat(server, HUGE)
    assert r.status_code == 400 and "not offered by this server" in r.json()["error"]["message"]
    assert time.perf_counter() - start < 2.0 and len(server.coordinator.braids._cache) == built


def test_a_key_from_the_meta_braiders_grid_is_served(server):
    key = sorted(server.coordinator.meta.agent.candidates.keys())[0]
    r = chat(server, key)
    assert r.status_code == 200 and r.json()["model"] == key


@pytest.mark.parametrize(
    "key, limits, message",
    [
        (HUGE, BraidLimits(), "fusion_dim 2097152 exceeds this server's limit of 512"),
        ("prose-llama|arith-gpt2,prose-llama|attention|9|early|8", BraidLimits(), "fusion_points 9 exceeds"),
        ("prose-llama|nope,prose-llama|router|1|early|8", BraidLimits(), "no such members ['nope']"),
        (
            "prose-llama|arith-gpt2,prose-llama|router|1|early|12",
            BraidLimits(max_memory_mb=0.01),
            "needs about",
        ),
    ],
)
def test_custom_keys_are_capped_when_the_operator_opens_them(serve_coordinator, key, limits, message):
    """The keys here are outside the meta-braider's grid (fusion_dim 12, 9 points, an unknown member)."""
    coord = serve_coordinator(braid_policy=BraidPolicy(custom=True, limits=limits))
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        coord.run("2 + 2", use_memory=False, use_tools=False, model=key, max_new_tokens=2)
    assert len(coord.braids._cache) == 0


def test_a_custom_key_within_the_limits_is_built(serve_coordinator):
    coord = serve_coordinator(braid_policy=BraidPolicy(custom=True))
    key = "prose-llama|arith-gpt2,prose-llama|router|1|early|12"
    assert key not in coord.braids.factory.grid
    out = coord.run("2 + 2", use_memory=False, use_tools=False, model=key, max_new_tokens=2)
    assert out.model == key


def test_a_slow_build_holds_up_neither_built_braids_nor_more_than_max_builds():
    import threading

    from serve.braids import BraidFactory, BuildsBusy, LocalBraids

    release, started = threading.Event(), threading.Event()

    class SlowFactory(BraidFactory):
        def build(self, key):
            if key == "slow":
                started.set()
                release.wait(10)
            return object(), {"key": key}

    braids = LocalBraids(SlowFactory(policy=BraidPolicy(max_builds=1, build_wait_s=0.3)), capacity=4)
    braids.get("ready")
    builder = threading.Thread(target=braids.get, args=("slow",))
    builder.start()
    assert started.wait(5)
    start = time.perf_counter()
    assert braids.get("ready").info == {"key": "ready"}  # a built braid answers while another builds
    assert time.perf_counter() - start < 0.1
    with pytest.raises(BuildsBusy):  # a second new braid waits for the one build slot, then gives up
        braids.get("other")
    release.set()
    builder.join(5)
    assert braids.get("other").info == {"key": "other"}
