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
