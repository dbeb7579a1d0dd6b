"""MemoryManager: the seed's memory API over any store backend.

Conversations and messages, entities and their relationships, documents chunked for search, and semantic
search over messages and documents (keyword search as the fallback).
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from memory.embeddings import Embedder, get_embedder
from memory.neo4j_store import setting
from memory.store import Conversation, Document, Entity, MemoryStore, Message, Relationship, SearchHit

REL_TYPE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def relationship_type(value: str) -> str:
    """A relationship type as stored: UPPER_SNAKE_CASE. Words separated by spaces, hyphens, dots or
    underscores, or written in camelCase, are joined with _ and upper-cased ("has framework", "has-framework"
    and "hasFramework" are HAS_FRAMEWORK); what is left must be a letter then up to 63 letters, digits or _,
    else it is refused (types are never spliced into a query, but they stay identifiers)."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", value.strip())
    normal = re.sub(r"[\s.\-_]+", "_", words).upper()
    if not REL_TYPE.match(normal):
        raise ValueError(
            f"invalid relationship type {value!r}: a letter, then up to 63 letters, digits or _ "
            "(words joined by spaces, hyphens or dots, or camelCase, are normalised to UPPER_SNAKE_CASE)"
        )
    return normal


def default_data_dir() -> Path:
    return Path(setting("BRAID_DATA_DIR") or Path.home() / ".local" / "share" / "llm-braid")


def chunk_text(text: str, size: int = 800, overlap: int = 100) -> list[str]:
    """Split on paragraph and sentence boundaries into pieces of about ``size`` characters, overlapping."""
    pieces = [p for p in re.split(r"(?<=[.!?])\s+|\n{2,}", text) if p.strip()]
    chunks, current = [], ""
    for piece in pieces:
        if current and len(current) + len(piece) + 1 > size:
            chunks.append(current)
            current = current[-overlap:] if overlap else ""
        current = f"{current} {piece}".strip()
    if current:
        chunks.append(current)
    return [c[i : i + size] for c in chunks for i in range(0, len(c), size)] or [""]


def init_schema(target: Any) -> None:
    """Create tables / constraints / indexes and the schema version (a store, a client or a manager)."""
    manager = target if isinstance(target, MemoryManager) else MemoryManager(target)
    manager.store.init_schema(manager.embedder.dim)


def _sqlite(data_dir: str | Path | None) -> Any:
    from memory.sqlite_store import SQLiteStore

    return SQLiteStore(Path(data_dir or default_data_dir()) / "memory.sqlite")


def _neo4j(data_dir: str | Path | None) -> Any:
    from memory.neo4j_store import Neo4jClient  # the neo4j driver: an optional dependency

    return Neo4jClient()


# Store backends by the name ``MemoryManager(backend=...)`` takes; each opens its store (one file each:
# memory/sqlite_store.py, memory/neo4j_store.py) from the data dir or the NEO4J_* environment.
STORE_BACKENDS: dict[str, Callable[[str | Path | None], Any]] = {"sqlite": _sqlite, "neo4j": _neo4j}


def open_store(backend: str, data_dir: str | Path | None = None) -> Any:
    if backend not in STORE_BACKENDS:
        raise ValueError(f"unknown memory backend {backend!r}; valid: {', '.join(sorted(STORE_BACKENDS))}")
    return STORE_BACKENDS[backend](data_dir)


class MemoryManager:
    """``MemoryManager(client)``: a Neo4jClient or a store; with none, the ``backend`` named (default: neo4j
    when NEO4J_URI is set in the environment or ``.env``, else the embedded SQLite store under the data dir)."""

    def __init__(
        self,
        client: Any = None,
        *,
        embedder: Embedder | str | None = None,
        data_dir: str | Path | None = None,
        backend: str | None = None,
    ):
        self.embedder = (
            get_embedder(embedder or setting("BRAID_EMBEDDER", "minilm"))
            if not hasattr(embedder, "embed")
            else embedder
        )
        if client is None:
            client = open_store(backend or ("neo4j" if setting("NEO4J_URI") else "sqlite"), data_dir)
        self.store: MemoryStore = getattr(client, "store", client)
        self.store.init_schema(self.embedder.dim)

    # -- conversations ----------------------------------------------------------------------------------------
    def create_conversation(
        self, title: str | None = None, metadata: dict | None = None, conversation_id: str | None = None
    ) -> str:
        conv = Conversation(
            id=conversation_id or str(uuid.uuid4()),
            title=title,
            metadata=metadata or {},
            created_at=time.time(),
        )
        self.store.create_conversation(conv)
        return conv.id

    def add_message(
        self,
        conversation_id: str,
        role: str,
        content: str,
        metadata: dict | None = None,
        message_id: str | None = None,
    ) -> str:
        msg = Message(
            id=message_id or str(uuid.uuid4()), conversation_id=conversation_id, role=role, content=content,
            metadata=metadata or {}, created_at=time.time(),
        )  # fmt: skip
        return self.store.add_message(msg, self.embedder.embed([content])[0]).id

    def get_conversation_history(self, conversation_id: str, limit: int = 100, offset: int = 0) -> list[dict]:
        return [m.model_dump() for m in self.store.get_messages(conversation_id, limit, offset)]

    def list_conversations(self, limit: int = 50, offset: int = 0) -> list[dict]:
        return [c.model_dump() for c in self.store.list_conversations(limit, offset)]

    def delete_conversation(self, conversation_id: str) -> bool:
        return self.store.delete_conversation(conversation_id)

    # -- entities ---------------------------------------------------------------------------------------------
    def create_entity(
        self, name: str, type: str, description: str = "", metadata: dict | None = None
    ) -> None:
        if not name or not type:
            raise ValueError("entity name and type must be non-empty")
        self.store.upsert_entity(
            Entity(name=name, type=type, description=description, metadata=metadata or {})
        )

    def get_entity(self, name: str) -> dict | None:
        entity = self.store.get_entity(name)
        return None if entity is None else entity.model_dump()

    def delete_entity(self, name: str) -> bool:
        return self.store.delete_entity(name)

    def list_entities(self, limit: int = 100, offset: int = 0) -> list[dict]:
        return [e.model_dump() for e in self.store.list_entities(limit, offset)]

    def create_entity_relationship(
        self, source: str, target: str, rel_type: str, metadata: dict | None = None
    ) -> str:
        """Link two entities; an endpoint not stored yet is created (type ``entity``, no description) so the
        seed's ``create_entity_relationship("Python", "Django", "HAS_FRAMEWORK")`` works before Django is
        described; ``create_entity`` fills it in later. The type is normalised (``relationship_type``) and
        returned. Everything is checked before anything is written."""
        rel = Relationship(
            source=source, target=target, type=relationship_type(rel_type), metadata=metadata or {}
        )
        for name in dict.fromkeys((source, target)):
            if self.store.get_entity(name) is None:
                self.store.upsert_entity(Entity(name=name, type="entity", metadata={"created_by": rel.type}))
        self.store.add_relationship(rel)
        return rel.type

    def get_entity_neighbourhood(self, name: str) -> list[dict]:
        return [r.model_dump() for r in self.store.neighbours(name)]

    # -- documents --------------------------------------------------------------------------------------------
    def store_document(self, url: str, title: str, content: str, metadata: dict | None = None) -> str:
        """Stored once per URL (its id is a hash of the URL); storing again replaces it."""
        doc_id = hashlib.sha256(url.encode()).hexdigest()[:32]
        chunks = chunk_text(content)
        doc = Document(
            id=doc_id, url=url, title=title, content=content, metadata=metadata or {}, created_at=time.time()
        )
        self.store.upsert_document(doc, chunks, self.embedder.embed([f"{title}\n{c}" for c in chunks]))
        return doc_id

    def get_document(self, document_id: str) -> dict | None:
        doc = self.store.get_document(document_id)
        return None if doc is None else doc.model_dump()

    def delete_document(self, document_id: str) -> bool:
        return self.store.delete_document(document_id)

    def list_documents(self, limit: int = 100, offset: int = 0) -> list[dict]:
        return [d.model_dump() for d in self.store.list_documents(limit, offset)]

    # -- export / import ---------------------------------------------------------------------------------------
    def export_records(self) -> Iterator[dict]:
        """Every record as a dict with a "record" kind, in an order ``import_records`` can replay."""
        for conv in _pages(self.store.list_conversations):
            yield {"record": "conversation", **conv.model_dump(exclude={"message_count"})}
            for msg in _pages(lambda limit, offset, c=conv.id: self.store.get_messages(c, limit, offset)):
                yield {"record": "message", **msg.model_dump()}
        entities = list(_pages(self.store.list_entities))
        for entity in entities:
            yield {"record": "entity", **entity.model_dump()}
        for entity in entities:
            for rel in self.store.neighbours(entity.name):
                if rel.source == entity.name:
                    yield {"record": "relationship", **rel.model_dump()}
        for doc in _pages(self.store.list_documents):
            yield {"record": "document", **doc.model_dump()}

    def import_records(self, records: Iterable[dict]) -> int:
        """Replay exported records (ids kept, so importing twice changes nothing). Returns the count."""
        count = 0
        for rec in records:
            kind = rec.get("record")
            if kind == "conversation":
                self.create_conversation(rec.get("title"), rec.get("metadata"), conversation_id=rec["id"])
            elif kind == "message":
                self.add_message(
                    rec["conversation_id"],
                    rec["role"],
                    rec["content"],
                    rec.get("metadata"),
                    message_id=rec["id"],
                )
            elif kind == "entity":
                self.create_entity(rec["name"], rec["type"], rec.get("description", ""), rec.get("metadata"))
            elif kind == "relationship":
                self.create_entity_relationship(
                    rec["source"], rec["target"], rec["type"], rec.get("metadata")
                )
            elif kind == "document":
                self.store_document(rec["url"], rec["title"], rec["content"], rec.get("metadata"))
            else:
                raise ValueError(f"record {count + 1}: unknown record kind {kind!r}")
            count += 1
        return count

    # -- search -----------------------------------------------------------------------------------------------
    def semantic_search_messages(
        self, query: str, top_k: int = 10, conversation_id: str | None = None
    ) -> list[dict]:
        return self._search("message", query, top_k, conversation_id)

    def semantic_search_documents(self, query: str, top_k: int = 5) -> list[dict]:
        return self._search("document", query, top_k, None)

    def keyword_search(self, kind: str, query: str, top_k: int = 10) -> list[dict]:
        return [h.model_dump() for h in self.store.keyword_search(kind, query, top_k)]

    def _search(self, kind: str, query: str, top_k: int, conversation_id: str | None) -> list[dict]:
        hits: list[SearchHit] = self.store.vector_search(
            kind, self.embedder.embed([query])[0], top_k, conversation_id
        )
        if not hits:  # nothing embedded yet matches: fall back to keywords
            hits = self.store.keyword_search(kind, query, top_k)
        return [h.model_dump() for h in hits]

    def stats(self) -> dict[str, int]:
        return self.store.stats()

    def close(self) -> None:
        self.store.close()


def _pages(fetch, size: int = 500) -> Iterator:
    offset = 0
    while True:
        page = fetch(size, offset)
        yield from page
        if len(page) < size:
            return
        offset += size
