import pytest

from tests.bench.conftest import run_smoke


@pytest.mark.integration
@pytest.mark.slow
def test_distributed_gpu_bench_smoke():
    """The GPU benchmark's code path on CPU with pico members: both placements produce a full row."""
    out = run_smoke("bench/distributed_gpu.py")
    rows = [
        line.split(" | ")
        for line in out.splitlines()
        if line.startswith("| local") or line.startswith("| ray")
    ]
    assert [r[0] for r in rows] == ["| local", "| ray"]
    for r in rows:
        assert all(float(x) > 0 for x in r[1:4])  # tokens/s of each member alone and of the braid
        assert r[4].endswith("x") and float(r[4][:-1]) > 0
