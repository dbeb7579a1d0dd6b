import pytest

from tests.bench.conftest import run_smoke


@pytest.mark.slow
@pytest.mark.integration
def test_arch_search_bench_smoke():
    """Both tasks, both arms, one seed, a few steps: the tables and the winners' one-line architectures."""
    out = run_smoke("bench/arch_search.py")
    assert "**composition** (search beats grid" in out and "**pair** (search beats grid" in out
    rows = [line.split(" | ")[0] for line in out.splitlines()]
    assert rows.count("| grid") == 2 and rows.count("| search") == 2  # one table row per arm and task
    assert "winner architecture" in out and "| pair | 0 | search |" in out
