"""Every numeric field over its whole declared range (and past its edges): never a 5xx."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.conftest import call

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
edges = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**70), 2**70))
constraints = st.fixed_dictionaries(
    {},
    optional={
        "compute_budget": st.one_of(st.floats(0, 1, exclude_min=True), edges),
        "latency_requirement": st.one_of(st.floats(0, 1e6, exclude_min=True), edges),
        "accuracy_target": st.one_of(st.floats(0, 1), edges),
        "min_score": st.one_of(st.floats(-1e6, 1e6), edges),
    },
)
task = st.fixed_dictionaries(
    {"type": st.sampled_from(["arithmetic", "code_completion", "fact_recall", "anything"])},
    optional={"complexity": st.one_of(st.floats(0, 1), edges)},
)


@SETTINGS
@given(constraints=constraints, task=task)
def test_decide_over_the_ranges(server, constraints, task):
    r = call(server, "POST", "/v1/braid/decide", {"task": task, "constraints": constraints})
    assert r.status_code < 500, r.text


@SETTINGS
@given(
    constraints=constraints,
    temperature=st.one_of(st.floats(0, 2), edges),
    top_p=st.one_of(st.floats(0, 1, exclude_min=True), edges),
    seed=st.one_of(st.integers(0, 2**63 - 1), edges),
    max_tokens=st.one_of(st.integers(1, 2**31 - 1), edges),
)
def test_chat_over_the_ranges(server, constraints, temperature, top_p, seed, max_tokens):
    body = {
        "messages": [{"role": "user", "content": "1 + 1"}], "temperature": temperature, "top_p": top_p,
        "seed": seed, "max_tokens": max_tokens,
        "braid": {"constraints": constraints, "use_tools": False, "use_memory": False},
    }  # fmt: skip
    r = call(server, "POST", "/v1/chat/completions", body)
    assert r.status_code < 500, r.text
