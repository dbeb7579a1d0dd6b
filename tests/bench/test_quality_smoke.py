import sys

import pytest

from tests.bench.conftest import ROOT, run_smoke


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "header"),
    [
        ("bench/quality.py", "| model |"),
        ("bench/composition.py", "| model |"),
        ("bench/kv_arith.py", "| model |"),
        ("bench/curve.py", "| strategy |"),
        ("bench/hierarchy.py", "| model |"),
    ],
)
def test_benchmark_runs_end_to_end_in_smoke_mode(tiny_zoo, script, header):
    cache, _ = tiny_zoo
    assert header in run_smoke(script, BRAID_CACHE=str(cache))


def test_quality_plot_from_recorded_rows(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT))
    import bench.quality as quality

    rows = quality.recorded_rows()
    assert rows and all(len(r) == 10 for r in rows)
    assert any("±" in r[3] for r in rows)  # braid rows are the mean ± sd over seeds
    monkeypatch.setattr(quality, "DOCS", tmp_path)
    out = quality.plot_rows(rows)
    assert out == tmp_path / "quality.png" and out.stat().st_size > 10_000
