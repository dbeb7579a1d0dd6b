"""The response log: one rating per answer, and logs written by older versions open without losing rows."""

from __future__ import annotations

import sqlite3

from serve.responses import ResponseLog

OLD_SCHEMA = """
CREATE TABLE responses (id TEXT PRIMARY KEY, created REAL NOT NULL, conversation_id TEXT, model TEXT NOT NULL,
  task TEXT, decision TEXT, query TEXT NOT NULL, answer TEXT NOT NULL);
CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, response_id TEXT NOT NULL REFERENCES responses(id),
  rating REAL NOT NULL, comment TEXT, created REAL NOT NULL);
INSERT INTO responses VALUES ('r1', 0, NULL, 'auto', NULL, NULL, 'q', 'a');
INSERT INTO feedback (response_id, rating, created) VALUES ('r1', 1, 0), ('r1', 1, 0);
"""


def test_one_rating_per_response(tmp_path):
    log = ResponseLog(tmp_path / "responses.db")
    log.add("r", model="auto", query="q", answer="a", owner="o")
    assert log.get("r")["owner"] == "o"
    assert log.add_feedback("r", 1.0) is not None
    assert log.add_feedback("r", -1.0) is None and log.feedback_count() == 1
    other = ResponseLog(tmp_path / "responses.db")  # another replica on the same file
    assert other.add_feedback("r", 1.0) is None


def test_a_log_from_before_owners_and_single_ratings_keeps_its_rows(tmp_path):
    path = tmp_path / "responses.db"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.close()
    log = ResponseLog(path)
    assert log.get("r1")["owner"] is None and log.feedback_count() == 2  # repeated ratings kept
    assert log.add_feedback("r1", 0.5) is None  # no unique index possible there: checked in code
    log.add("r2", model="auto", query="q", answer="a")
    assert log.add_feedback("r2", 0.5) is not None and log.add_feedback("r2", 0.5) is None
