"""The embedded default backend: SQLite (WAL, transactions) in a file, exact cosine search with numpy, FTS5
for keywords. One connection per store, guarded by a lock, so threads can share a store."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from pathlib import Path

import numpy as np

from memory.store import (
    SCHEMA_VERSION,
    Conversation,
    Document,
    Entity,
    MemoryStore,
    Message,
    Relationship,
    SearchHit,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, title TEXT, metadata TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, metadata TEXT NOT NULL,
  created_at REAL NOT NULL, embedding BLOB NOT NULL, UNIQUE (conversation_id, seq));
CREATE TABLE IF NOT EXISTS entities (name TEXT PRIMARY KEY, type TEXT NOT NULL, description TEXT NOT NULL, metadata TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS relationships (
  source TEXT NOT NULL REFERENCES entities(name) ON DELETE CASCADE,
  target TEXT NOT NULL REFERENCES entities(name) ON DELETE CASCADE,
  type TEXT NOT NULL, metadata TEXT NOT NULL, PRIMARY KEY (source, target, type));
CREATE TABLE IF NOT EXISTS documents (id TEXT PRIMARY KEY, url TEXT NOT NULL, title TEXT NOT NULL, content TEXT NOT NULL, metadata TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
  document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE, idx INTEGER NOT NULL,
  text TEXT NOT NULL, embedding BLOB NOT NULL, PRIMARY KEY (document_id, idx));
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(content, message_id UNINDEXED);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, document_id UNINDEXED, idx UNINDEXED);
"""


class SQLiteStore(MemoryStore):
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # committed = durable across a process kill
        self._db.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.RLock()
        self._vectors: dict[str, tuple[list, np.ndarray] | None] = {"message": None, "document": None}
        self._data_version: int | None = None  # PRAGMA data_version when the matrices were read

    def _tx(self):
        return _Transaction(self._db, self._lock)

    def init_schema(self, dim: int) -> None:
        with self._tx() as db:
            for statement in filter(str.strip, SCHEMA.split(";")):
                db.execute(statement)
            stored = db.execute("SELECT value FROM meta WHERE key='embedding_dim'").fetchone()
            if stored and int(stored[0]) != dim:
                raise ValueError(
                    f"store {self.path} holds {stored[0]}-dim embeddings; this embedder makes {dim}"
                )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('embedding_dim', ?)", (str(dim),))

    # -- conversations and messages -------------------------------------------------------------------------
    def create_conversation(self, c: Conversation) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO conversations VALUES (?, ?, ?, ?)",
                (c.id, c.title, json.dumps(c.metadata), c.created_at),
            )

    def list_conversations(self, limit: int, offset: int) -> list[Conversation]:
        rows = self._db.execute(
            "SELECT c.id, c.title, c.metadata, c.created_at, COUNT(m.id) FROM conversations c LEFT JOIN messages m "
            "ON m.conversation_id = c.id GROUP BY c.id ORDER BY c.created_at, c.id LIMIT ? OFFSET ?", (limit, offset)
        ).fetchall()  # fmt: skip
        return [
            Conversation(id=r[0], title=r[1], metadata=json.loads(r[2]), created_at=r[3], message_count=r[4])
            for r in rows
        ]

    def delete_conversation(self, conversation_id: str) -> bool:
        with self._tx() as db:
            ids = [
                r[0]
                for r in db.execute("SELECT id FROM messages WHERE conversation_id=?", (conversation_id,))
            ]
            db.executemany("DELETE FROM messages_fts WHERE message_id=?", [(i,) for i in ids])
            gone = db.execute("DELETE FROM conversations WHERE id=?", (conversation_id,)).rowcount > 0
        self._vectors["message"] = None
        return gone

    def add_message(self, m: Message, embedding: np.ndarray) -> Message:
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM conversations WHERE id=?", (m.conversation_id,)).fetchone():
                raise KeyError(f"no conversation {m.conversation_id!r}")
            existing = db.execute("SELECT seq FROM messages WHERE id=?", (m.id,)).fetchone()
            if existing:  # idempotent on the message id
                return m.model_copy(update={"seq": existing[0]})
            seq = db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id=?", (m.conversation_id,)
            ).fetchone()[0]
            db.execute(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    m.id,
                    m.conversation_id,
                    seq,
                    m.role,
                    m.content,
                    json.dumps(m.metadata),
                    m.created_at,
                    _blob(embedding),
                ),
            )
            db.execute("INSERT INTO messages_fts (content, message_id) VALUES (?, ?)", (m.content, m.id))
        self._vectors["message"] = None
        return m.model_copy(update={"seq": seq})

    def get_messages(self, conversation_id: str, limit: int, offset: int) -> list[Message]:
        rows = self._db.execute(
            "SELECT id, conversation_id, seq, role, content, metadata, created_at FROM messages "
            "WHERE conversation_id=? ORDER BY seq LIMIT ? OFFSET ?", (conversation_id, limit, offset)
        ).fetchall()  # fmt: skip
        return [
            Message(
                id=r[0],
                conversation_id=r[1],
                seq=r[2],
                role=r[3],
                content=r[4],
                metadata=json.loads(r[5]),
                created_at=r[6],
            )
            for r in rows
        ]

    # -- entities ---------------------------------------------------------------------------------------------
    def upsert_entity(self, e: Entity) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO entities VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET type=excluded.type, "
                "description=excluded.description, metadata=excluded.metadata", (e.name, e.type, e.description, json.dumps(e.metadata))
            )  # fmt: skip

    def get_entity(self, name: str) -> Entity | None:
        r = self._db.execute(
            "SELECT name, type, description, metadata FROM entities WHERE name=?", (name,)
        ).fetchone()
        return (
            None if r is None else Entity(name=r[0], type=r[1], description=r[2], metadata=json.loads(r[3]))
        )

    def delete_entity(self, name: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM entities WHERE name=?", (name,)).rowcount > 0

    def list_entities(self, limit: int, offset: int) -> list[Entity]:
        rows = self._db.execute(
            "SELECT name, type, description, metadata FROM entities ORDER BY name LIMIT ? OFFSET ?",
            (limit, offset),
        ).fetchall()
        return [Entity(name=r[0], type=r[1], description=r[2], metadata=json.loads(r[3])) for r in rows]

    def add_relationship(self, r: Relationship) -> None:
        with self._tx() as db:
            for name in (r.source, r.target):
                if not db.execute("SELECT 1 FROM entities WHERE name=?", (name,)).fetchone():
                    raise KeyError(f"no entity {name!r}")
            db.execute(
                "INSERT OR REPLACE INTO relationships VALUES (?, ?, ?, ?)",
                (r.source, r.target, r.type, json.dumps(r.metadata)),
            )

    def neighbours(self, name: str) -> list[Relationship]:
        rows = self._db.execute(
            "SELECT source, target, type, metadata FROM relationships WHERE source=? OR target=? ORDER BY source, target, type", (name, name)
        ).fetchall()  # fmt: skip
        return [Relationship(source=r[0], target=r[1], type=r[2], metadata=json.loads(r[3])) for r in rows]

    # -- documents --------------------------------------------------------------------------------------------
    def upsert_document(self, d: Document, chunks: list[str], embeddings: np.ndarray) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM chunks_fts WHERE document_id=?", (d.id,))
            db.execute("DELETE FROM documents WHERE id=?", (d.id,))
            db.execute(
                "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)",
                (d.id, d.url, d.title, d.content, json.dumps(d.metadata), d.created_at),
            )
            for i, (text, vec) in enumerate(zip(chunks, embeddings, strict=True)):
                db.execute("INSERT INTO chunks VALUES (?, ?, ?, ?)", (d.id, i, text, _blob(vec)))
                db.execute(
                    "INSERT INTO chunks_fts (text, document_id, idx) VALUES (?, ?, ?)", (text, d.id, i)
                )
        self._vectors["document"] = None

    def get_document(self, document_id: str) -> Document | None:
        r = self._db.execute(
            "SELECT id, url, title, content, metadata, created_at FROM documents WHERE id=?", (document_id,)
        ).fetchone()
        return (
            None
            if r is None
            else Document(
                id=r[0], url=r[1], title=r[2], content=r[3], metadata=json.loads(r[4]), created_at=r[5]
            )
        )

    def delete_document(self, document_id: str) -> bool:
        with self._tx() as db:
            db.execute("DELETE FROM chunks_fts WHERE document_id=?", (document_id,))
            gone = db.execute("DELETE FROM documents WHERE id=?", (document_id,)).rowcount > 0
        self._vectors["document"] = None
        return gone

    def list_documents(self, limit: int, offset: int) -> list[Document]:
        rows = self._db.execute(
            "SELECT id, url, title, content, metadata, created_at FROM documents ORDER BY created_at, id LIMIT ? OFFSET ?", (limit, offset)
        ).fetchall()  # fmt: skip
        return [
            Document(id=r[0], url=r[1], title=r[2], content=r[3], metadata=json.loads(r[4]), created_at=r[5])
            for r in rows
        ]

    # -- search -----------------------------------------------------------------------------------------------
    def _matrix(self, kind: str) -> tuple[list, np.ndarray]:
        with self._lock:
            # data_version moves when another connection (another process: a second gateway replica on the
            # same state dir) commits; this connection's own writes reset the matrices where they happen
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:
                self._vectors = {"message": None, "document": None}
                self._data_version = version
            if self._vectors[kind] is None:
                sql = (
                    "SELECT id, content, conversation_id, embedding FROM messages ORDER BY rowid"
                    if kind == "message"
                    else "SELECT c.document_id, c.text, c.idx, c.embedding FROM chunks c ORDER BY c.rowid"
                )
                rows = self._db.execute(sql).fetchall()
                vecs = (
                    np.stack([np.frombuffer(r[3], dtype=np.float32) for r in rows])
                    if rows
                    else np.zeros((0, 1), np.float32)
                )
                self._vectors[kind] = ([r[:3] for r in rows], vecs)
            return self._vectors[kind]

    def vector_search(
        self, kind: str, query: np.ndarray, top_k: int, conversation_id: str | None = None
    ) -> list[SearchHit]:
        rows, vecs = self._matrix(kind)
        if not rows:
            return []
        scores = vecs @ query.astype(np.float32)  # unit vectors: cosine similarity
        if conversation_id is not None:
            scores = np.where([r[2] == conversation_id for r in rows], scores, -np.inf)
        # candidates first (argpartition), then exact order; documents may need more for one-hit-per-document
        want = min(len(scores), top_k * (8 if kind == "document" else 1))
        candidates = np.argpartition(-scores, want - 1)[:want]
        best: list[SearchHit] = []
        seen: set[str] = set()
        for i in candidates[np.argsort(-scores[candidates])]:
            if not np.isfinite(scores[i]) or len(best) == top_k:
                break
            key = rows[i][0]
            if kind == "document" and key in seen:  # one hit per document: its best chunk
                continue
            seen.add(key)
            best.append(self._hit(kind, rows[i], float(scores[i])))
        return best

    def _hit(self, kind: str, row: tuple, score: float) -> SearchHit:
        if kind == "message":
            return SearchHit(
                kind="message", id=row[0], score=score, text=row[1], metadata={"conversation_id": row[2]}
            )
        doc = self._db.execute("SELECT url, title FROM documents WHERE id=?", (row[0],)).fetchone()
        return SearchHit(
            kind="document",
            id=row[0],
            score=score,
            text=row[1],
            metadata={"url": doc[0], "title": doc[1], "chunk": row[2]},
        )

    def keyword_search(self, kind: str, query: str, top_k: int) -> list[SearchHit]:
        words = re.findall(r"\w+", query)
        if not words:
            return []
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)  # quoted terms: no FTS syntax
        if kind == "message":
            sql = "SELECT m.id, m.content, m.conversation_id, bm25(messages_fts) FROM messages_fts JOIN messages m ON m.id = messages_fts.message_id WHERE messages_fts MATCH ? ORDER BY bm25(messages_fts) LIMIT ?"
        else:
            sql = "SELECT document_id, text, idx, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts) LIMIT ?"
        rows = self._db.execute(sql, (match, top_k)).fetchall()
        return [self._hit(kind, r[:3], -float(r[3])) for r in rows]

    def stats(self) -> dict[str, int]:
        tables = ("conversations", "messages", "entities", "relationships", "documents", "chunks")
        return {t: self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}  # noqa: S608

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT under the store's lock; ROLLBACK on any error."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock):
        self.db, self.lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()
