"""Every script in examples/ runs, on the tiny zoo, as a reader would run it: `python examples/<name>.py`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (ROOT / "examples").glob("*.py") if p.name != "common.py")
EXPECT = {  # a line each script must print: it ran to its end and did its job
    "quickstart.py": "fusion parameters over 2 frozen members",
    "fusion_strategies.py": "router:",
    "train_fusion.py": "saved, loaded, same text",
    "memory_basics.py": "documents: ['Braiding']",
    "tools_basics.py": "untrusted text",
    "coordinator.py": "('web_search', 'ok')",
    "meta_braider.py": "ana now gets:",
    "learning.py": "after three shots:",
    "test_braiding.py": "braiding works",
    "braiding_tutorial.py": "6. Generate",
}


def test_every_example_is_listed():
    assert sorted(EXPECT) == SCRIPTS


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script, tiny_zoo, pages, tmp_path):
    cache, _ = tiny_zoo
    (tmp_path / "tools.yaml").write_text(
        f"fetch: {{allow: ['127.0.0.1/32'], timeout_s: 3}}\n"
        f"search: {{duckduckgo_url: '{pages.base}/html/', min_interval_s: 0, backoff_s: 0.01}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "MODEL_", "FUSION_"))}
    env |= {"PYTHONPATH": str(ROOT), "BRAID_CACHE": str(cache), "BRAID_DATA_DIR": str(tmp_path / "data"),
            "BRAID_EMBEDDER": "hashing", "BRAID_TOOLS_CONFIG": str(tmp_path / "tools.yaml"),
            "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    args = [sys.executable, str(ROOT / "examples" / script)]
    if script == "tools_basics.py":
        args += ["transformer architecture", f"{pages.base}/article"]
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert EXPECT[script] in done.stdout, done.stdout[-2000:]
