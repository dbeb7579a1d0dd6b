import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_smoke(script: str, **env: str) -> str:
    """Run ``bench/<script> --smoke-test``; it must succeed and leave BENCHMARKS.md untouched. Returns stdout."""
    before = (ROOT / "BENCHMARKS.md").read_text()
    out = subprocess.run(
        [sys.executable, script, "--smoke-test"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert (ROOT / "BENCHMARKS.md").read_text() == before  # smoke runs never touch the recorded numbers
    return out.stdout
