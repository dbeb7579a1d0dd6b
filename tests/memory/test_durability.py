"""A writer killed with SIGKILL mid-stream loses no acknowledged message."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memory import HashingEmbedder, MemoryManager, Neo4jClient, SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
WRITER = """
import sys
from memory import HashingEmbedder, MemoryManager, Neo4jClient, SQLiteStore
store = SQLiteStore(sys.argv[1]) if len(sys.argv) == 2 else Neo4jClient(*sys.argv[1:]).store
mm = MemoryManager(store, embedder=HashingEmbedder())
conv = mm.create_conversation(conversation_id="c")
i = 0
while True:
    mid = mm.add_message(conv, "user", f"message {i}", message_id=f"m{i}")
    print(mid, flush=True)  # acknowledged: the transaction has committed
    i += 1
"""


@pytest.mark.parametrize("backend", ["sqlite", "neo4j"])
def test_sigkill_loses_no_acknowledged_message(tmp_path, request, backend):
    if backend == "sqlite":
        target = [str(tmp_path / "m.sqlite")]
    else:
        target = list(request.getfixturevalue("neo4j_settings"))
        Neo4jClient(*target).store.reset()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, *target], stdout=subprocess.PIPE, text=True, env=env
    )
    acked = []
    deadline = time.time() + 120
    while len(acked) < 300 and time.time() < deadline:
        acked.append(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(acked) == 300
    store = SQLiteStore(target[0]) if backend == "sqlite" else Neo4jClient(*target).store
    stored = {
        m["id"]
        for m in MemoryManager(store, embedder=HashingEmbedder()).get_conversation_history("c", limit=100_000)
    }
    assert set(acked) <= stored
