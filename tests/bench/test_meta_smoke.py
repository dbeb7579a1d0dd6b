import pytest

from tests.bench.conftest import run_smoke


@pytest.mark.slow
def test_meta_bench_smoke():
    out = run_smoke("bench/meta.py")
    assert "| meta-braider |" in out and "| kNN |" in out
    assert (
        "Decision latency" in out
        and "Constraints as the seed states them (" in out
        and "A raw score floor" in out
    )
    assert "| multi-agent: quality-, latency- and cost-first proposers, arbiter |" in out
    assert "Multi-agent (`meta.arbiter`" in out and "for the single agent; on the same" in out
