"""Memory shared by processes: a search sees what another process committed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from memory import HashingEmbedder, MemoryManager, SQLiteStore

WRITER = textwrap.dedent(
    """
    import sys
    from memory import HashingEmbedder, MemoryManager, SQLiteStore
    mm = MemoryManager(SQLiteStore(sys.argv[1]), embedder=HashingEmbedder())
    mm.add_message(sys.argv[2], "user", "the zebra crossing near the harbour")
    mm.store_document("https://example.org/zebra", "zebra", "the zebra crossing near the harbour")
    mm.close()
    """
)


def test_a_search_sees_messages_another_process_committed(tmp_path):
    path = tmp_path / "memory.sqlite"
    mm = MemoryManager(SQLiteStore(path), embedder=HashingEmbedder())
    conv = mm.create_conversation()
    mm.add_message(conv, "user", "a note about apples")
    mm.store_document("https://example.org/apples", "apples", "a note about apples")
    # warm this process's cached search matrices
    assert mm.semantic_search_messages("zebra crossing harbour", top_k=5)[0]["text"] == "a note about apples"
    assert len(mm.semantic_search_documents("zebra", top_k=5)) == 1
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", WRITER, str(path), conv], check=True, timeout=120, env=env)
    hits = mm.semantic_search_messages("zebra crossing harbour", top_k=5)
    assert hits[0]["text"] == "the zebra crossing near the harbour" and len(hits) == 2
    assert mm.semantic_search_documents("zebra crossing harbour", top_k=5)[0]["metadata"]["title"] == "zebra"
    mm.close()
