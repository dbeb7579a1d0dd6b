import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_core_benchmark_runs_end_to_end_in_smoke_mode():
    before = (ROOT / "BENCHMARKS.md").read_text()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "bench/core.py", "--smoke-test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| ratio |" in out.stdout
    assert (ROOT / "BENCHMARKS.md").read_text() == before  # smoke runs never touch the recorded numbers
