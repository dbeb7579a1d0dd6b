"""The README's Python snippets, run as written, in order, on the tiny zoo (they share one namespace, as a
reader's session would). Blocks that need the internet or a running server are compiled, not run: the
tools block searches DuckDuckGo (tests/tools replays its pages locally), the client block talks to
`braid serve` (tests/serve/test_api.py drives that endpoint with the same client)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
NEEDS_OUTSIDE = ("web_search", "openai.OpenAI(")


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_every_snippet_compiles():
    blocks = snippets()
    assert len(blocks) >= 5
    for i, code in enumerate(blocks):
        compile(code, f"README.md python block {i}", "exec")


@pytest.mark.slow
@pytest.mark.integration
def test_snippets_run_as_written_on_the_tiny_zoo(tiny_zoo, ray_local, tmp_path, monkeypatch):
    cache, _ = tiny_zoo
    monkeypatch.setenv("BRAID_CACHE", str(cache))  # build_zoo(tiny=True) finds the session's tiny zoo
    monkeypatch.setenv("BRAID_DATA_DIR", str(tmp_path / "data"))  # MemoryManager() writes here
    monkeypatch.chdir(tmp_path)  # runs/my-braid
    namespace: dict = {}
    ran = 0
    for i, code in enumerate(snippets()):
        if any(marker in code for marker in NEEDS_OUTSIDE):
            if "web_search" in code:  # the tools it defines are used later: build them without calling out
                exec("from tools import ToolExecutor\ntools = ToolExecutor()", namespace)
            continue
        exec(compile(code, f"README.md python block {i}", "exec"), namespace)
        ran += 1
    assert ran >= 3 and (tmp_path / "runs" / "my-braid" / "braid_config.json").is_file()
    assert isinstance(namespace["text"], str) and namespace["result"].answer is not None
