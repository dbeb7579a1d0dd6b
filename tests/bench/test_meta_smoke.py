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
