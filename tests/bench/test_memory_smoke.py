import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_memory_benchmark_runs_in_smoke_mode():
    before = (ROOT / "BENCHMARKS.md").read_text()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "bench/memory.py", "--smoke-test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| sqlite | 500 |" in out.stdout
    assert (ROOT / "BENCHMARKS.md").read_text() == before
