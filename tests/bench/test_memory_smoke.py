from tests.bench.conftest import run_smoke


def test_memory_benchmark_runs_in_smoke_mode():
    assert "| sqlite | 500 |" in run_smoke("bench/memory.py")
