import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("script", ["bench/quality.py", "bench/composition.py"])
def test_benchmark_runs_end_to_end_in_smoke_mode(tiny_zoo, script):
    cache, _ = tiny_zoo
    before = (ROOT / "BENCHMARKS.md").read_text()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BRAID_CACHE": str(cache)}
    out = subprocess.run(
        [sys.executable, script, "--smoke-test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| model |" in out.stdout
    assert (ROOT / "BENCHMARKS.md").read_text() == before  # smoke runs never touch the recorded numbers


def test_quality_plot_from_recorded_rows(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT))
    import bench.quality as quality

    rows = quality.recorded_rows()
    assert rows and all(len(r) == 10 for r in rows)
    monkeypatch.setattr(quality, "DOCS", tmp_path)
    out = quality.plot_rows(rows)
    assert out == tmp_path / "quality.png" and out.stat().st_size > 10_000
