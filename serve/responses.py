"""The response log: every answer's task and decision, and the feedback given on it (SQLite, WAL).

Feedback names a response id, so the log is what lets a rating reach the decision that produced the answer,
also after a restart.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
  id TEXT PRIMARY KEY, created REAL NOT NULL, conversation_id TEXT, model TEXT NOT NULL,
  task TEXT, decision TEXT, query TEXT NOT NULL, answer TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
  id INTEGER PRIMARY KEY AUTOINCREMENT, response_id TEXT NOT NULL REFERENCES responses(id),
  rating REAL NOT NULL, comment TEXT, created REAL NOT NULL
);
"""


class ResponseLog:
    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def add(self, response_id: str, *, model: str, query: str, answer: str, conversation_id: str | None = None,
            task: dict | None = None, decision: dict | None = None) -> None:  # fmt: skip
        with self._lock:
            self._db.execute(
                "INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    response_id,
                    time.time(),
                    conversation_id,
                    model,
                    _dump(task),
                    _dump(decision),
                    query,
                    answer,
                ),
            )

    def get(self, response_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, created, conversation_id, model, task, decision, query, answer FROM responses "
                "WHERE id = ?",
                (response_id,),
            ).fetchone()
        if row is None:
            return None
        keys = ("id", "created", "conversation_id", "model", "task", "decision", "query", "answer")
        out = dict(zip(keys, row, strict=True))
        out["task"], out["decision"] = _load(out["task"]), _load(out["decision"])
        return out

    def add_feedback(self, response_id: str, rating: float, comment: str | None = None) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO feedback (response_id, rating, comment, created) VALUES (?, ?, ?, ?)",
                (response_id, rating, comment, time.time()),
            )
            return int(cur.lastrowid)

    def feedback_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def _dump(value: dict | None) -> str | None:
    return None if value is None else json.dumps(value)


def _load(text: str | None) -> dict | None:
    return None if text is None else json.loads(text)
