"""`make demo` (its --quick mode) as an integration test: zoo, sweep, pretraining, Serve, openai-client
chats with a tool call and memory, feedback."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_quick_runs_end_to_end(tiny_zoo, tmp_path, monkeypatch, capfd):
    from serve.demo import TINY, WIDTH, main

    cache, _ = tiny_zoo
    monkeypatch.setenv("BRAID_CACHE", str(cache))  # the session's zoo, already built
    console = Console(record=True, width=WIDTH, file=io.StringIO())
    out = main(quick=True, workdir=tmp_path, console=console)
    printed, other = console.export_text(), capfd.readouterr()
    lines = printed.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    for part in ("0/7", "2/7 Ray Tune sweep", "7/7", "Pareto fronts", "learning curve", TINY.split(":")[0]):
        assert part in " ".join(lines), part
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    assert (tmp_path / "meta_pretraining.png").stat().st_size > 1000
    # nothing from other libraries: every line on stdout/stderr is one of the demo's progress bars
    parts = re.split(r"[\r\n]+", re.sub(r"\x1b\[[0-9;]*m", "", other.out + other.err))
    noise = [p for p in parts if p.strip() and not re.search(r"\d+%\||\| *\d+/\d+ \[", p)]
    assert not noise, noise[:5]
    assert out["composition"]["right"] >= 3  # held-out keys no member answers alone
    first, second, arithmetic, streamed = out["turns"]
    (call,) = first["braid"]["tool_calls"]
    assert call["name"] == "extract_content" and call["error"] is None
    assert "Braided language models" in call["result"]["title"]
    page = call["result"]["url"]
    assert any(
        h["kind"] == "document" and h["metadata"].get("url") == page for h in second["braid"]["memory_hits"]
    )
    assert any(h["kind"] == "message" for h in second["braid"]["memory_hits"])  # the first turn, recalled
    assert arithmetic["braid"]["task"]["type"] == "arithmetic" and streamed["answer"]
    assert all(
        t["braid"]["decision"] and "policy confidence" in t["braid"]["explanation"] for t in out["turns"]
    )
    assert [f["updates"] for f in out["feedback"]] == [1, 2, 3, 4]
    assert out["records"] >= 4 and (tmp_path / "meta-braider.pt").exists()
    assert (tmp_path / "state" / "meta-braider.online.pt").exists()  # feedback persisted
    assert out["page"]["status"] == 200 and f"web page: {out['page']['url']}" in printed
