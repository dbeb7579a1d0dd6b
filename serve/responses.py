"""The response log: every answer's task and decision, and the feedback given on it (SQLite, WAL).

Feedback names a response id, so the log is what lets a rating reach the decision that produced the answer,
also after a restart. Each response takes one rating (a unique index, so replicas sharing the file agree),
from the principal it was written for (``owner``: a digest of the API key and the request's ``user``).
"""

from __future__ import annotations

import contextlib
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
ONE_RATING = "CREATE UNIQUE INDEX IF NOT EXISTS feedback_once ON feedback(response_id)"


class ResponseLog:
    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
        if "owner" not in columns:  # a log written before ratings were tied to their owner
            self._db.execute("ALTER TABLE responses ADD COLUMN owner TEXT")
        # an older log may hold repeated ratings: keep them (no index then), add_feedback checks in code
        with contextlib.suppress(sqlite3.IntegrityError):
            self._db.execute(ONE_RATING)
        self._lock = threading.Lock()

    def add(self, response_id: str, *, model: str, query: str, answer: str, conversation_id: str | None = None,
            task: dict | None = None, decision: dict | None = None, owner: str | None = None) -> None:  # fmt: skip
        with self._lock:
            self._db.execute(
                "INSERT INTO responses (id, created, conversation_id, model, task, decision, query, answer, owner) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (response_id, time.time(), conversation_id, model, _dump(task), _dump(decision), query, answer,
                 owner),
            )  # fmt: skip

    def get(self, response_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, created, conversation_id, model, task, decision, query, answer, owner FROM responses "
                "WHERE id = ?",
                (response_id,),
            ).fetchone()
        if row is None:
            return None
        keys = ("id", "created", "conversation_id", "model", "task", "decision", "query", "answer", "owner")
        out = dict(zip(keys, row, strict=True))
        out["task"], out["decision"] = _load(out["task"]), _load(out["decision"])
        return out

    def add_feedback(self, response_id: str, rating: float, comment: str | None = None) -> int | None:
        """The new rating's row id, or None when the response already has a rating (nothing is written)."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO feedback (response_id, rating, comment, created) "
                "SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM feedback WHERE response_id = ?)",
                (response_id, rating, comment, time.time(), response_id),
            )
            return int(cur.lastrowid) if cur.rowcount == 1 else None

    def feedback_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    def recent(self, limit: int = 200) -> list[dict]:
        """The newest ``limit`` responses, newest first, each with its rating (None if unrated) and when it
        was rated; the query and answer are left out (the dashboard counts, it does not read)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT r.id, r.created, r.model, r.task, r.decision, f.rating, f.created FROM responses r "
                "LEFT JOIN feedback f ON f.response_id = r.id ORDER BY r.created DESC, r.rowid DESC LIMIT ?",
                (limit,),
            ).fetchall()
        keys = ("id", "created", "model", "task", "decision", "rating", "rated")
        out = [dict(zip(keys, row, strict=True)) for row in rows]
        for row in out:
            row["task"], row["decision"] = _load(row["task"]), _load(row["decision"])
        return out

    def close(self) -> None:
        self._db.close()


def _dump(value: dict | None) -> str | None:
    return None if value is None else json.dumps(value)


def _load(text: str | None) -> dict | None:
    return None if text is None else json.loads(text)
