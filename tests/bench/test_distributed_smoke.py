import ast

import pytest

from tests.bench.conftest import run_smoke


@pytest.mark.integration
@pytest.mark.slow
def test_distributed_bench_smoke():
    out = run_smoke("bench/distributed.py")
    row = ast.literal_eval(out.strip().splitlines()[-1])  # the printed table row
    assert row[0] == "2 x 64x2" and row[-1].startswith("1/")  # one Ray call for the whole generation
    assert all(float(x) > 0 for x in row[2:7])  # every timing measured
