"""A writer killed with SIGKILL mid-stream loses no acknowledged message."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from memory import HashingEmbedder, MemoryManager, SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
WRITER = """
import sys
from memory import HashingEmbedder, MemoryManager, SQLiteStore
mm = MemoryManager(SQLiteStore(sys.argv[1]), embedder=HashingEmbedder())
conv = mm.create_conversation(conversation_id="c")
i = 0
while True:
    mid = mm.add_message(conv, "user", f"message {i}", message_id=f"m{i}")
    print(mid, flush=True)  # acknowledged: the transaction has committed
    i += 1
"""


def test_sigkill_loses_no_acknowledged_message(tmp_path):
    db = tmp_path / "m.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True, env=env
    )
    acked = []
    deadline = time.time() + 60
    while len(acked) < 300 and time.time() < deadline:
        acked.append(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(acked) == 300
    mm = MemoryManager(SQLiteStore(db), embedder=HashingEmbedder())
    stored = {m["id"] for m in mm.get_conversation_history("c", limit=100_000)}
    assert set(acked) <= stored
