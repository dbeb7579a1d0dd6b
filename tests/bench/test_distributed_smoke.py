import ast

import pytest

from tests.bench.conftest import run_smoke


@pytest.mark.integration
@pytest.mark.slow
def test_distributed_bench_smoke():
    out = run_smoke("bench/distributed.py")
    row = ast.literal_eval(out.strip().splitlines()[-1])  # the printed table row
    assert row[0] == "2 x 64x2" and len(row) == 10
    assert all(float(x) > 0 for x in row[3:8])  # every timing measured
