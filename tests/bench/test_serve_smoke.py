import pytest

from tests.bench.conftest import run_smoke


@pytest.mark.integration
@pytest.mark.slow
def test_serve_bench_smoke():
    out = run_smoke("bench/serve.py")
    rows = [line for line in out.splitlines() if line.startswith("| (")]
    assert [r.split(" | ")[0] for r in rows] == ["| (a) Coordinator.run in-process",
                                                 "| (b) HTTP API, uvicorn in-process", "| (c) Ray Serve app",
                                                 "| (d) Ray Serve app, colocated braids",
                                                 "| (e) Ray Serve app, colocated braids, direct ingress",
                                                 "| (f) Ray Serve app, direct ingress"]  # fmt: skip
    assert all(float(r.split(" | ")[1]) > 0 for r in rows)
