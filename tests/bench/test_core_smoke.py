import pytest

from tests.bench.conftest import run_smoke


@pytest.mark.slow
def test_core_benchmark_runs_end_to_end_in_smoke_mode():
    assert "| ratio |" in run_smoke("bench/core.py")
