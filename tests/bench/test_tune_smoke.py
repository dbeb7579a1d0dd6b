import pytest

from tests.bench.conftest import run_smoke


@pytest.mark.slow
@pytest.mark.integration
def test_tune_bench_smoke():
    out = run_smoke("bench/tune.py")
    assert "best score, ASHA" in out and "compute ratio" in out
