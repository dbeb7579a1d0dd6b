"""The Neo4j backend: the official driver (one per process), managed transactions with retry, MERGE on
stable ids, constraints, vector and full-text indexes and a schema-version node made by init_schema.

Relationship types between entities are never spliced into Cypher: every edge is ``:RELATED {type: ...}``
(types are validated by the manager), and every value travels as a parameter.
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import Any

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

_DRIVERS: dict[tuple[str, str], Any] = {}
_DRIVERS_LOCK = threading.Lock()
DEFAULT_URI = "bolt://localhost:7687"  # the seed's docker-compose Neo4j


def setting(name: str, default: str | None = None) -> str | None:
    """The environment, else the nearest ``.env``, else ``default`` (``braid.paths.setting``'s order; memory
    sits below braid, so it reads them itself)."""
    from dotenv import dotenv_values, find_dotenv

    if value := os.environ.get(name):
        return value
    path = find_dotenv(usecwd=True)
    return (dotenv_values(path).get(name) if path else None) or default


class Neo4jClient:
    """Connection settings from arguments, else NEO4J_URI, NEO4J_USER, NEO4J_PASSWORD, NEO4J_DATABASE (the
    environment, then ``.env``), else bolt://localhost:7687 as neo4j with no password."""

    def __init__(
        self,
        uri: str | None = None,
        user: str | None = None,
        password: str | None = None,
        database: str | None = None,
        timeout: float = 5.0,
    ):
        import neo4j

        self.uri = uri or setting("NEO4J_URI", DEFAULT_URI)
        self.user = user or setting("NEO4J_USER", "neo4j")
        password = password if password is not None else setting("NEO4J_PASSWORD", "")
        self.database = database or setting("NEO4J_DATABASE")
        with _DRIVERS_LOCK:
            key = (self.uri, self.user)
            if key not in _DRIVERS:
                _DRIVERS[key] = neo4j.GraphDatabase.driver(
                    self.uri, auth=(self.user, password), connection_timeout=timeout
                )
            self.driver = _DRIVERS[key]
        try:
            self.driver.verify_connectivity()
        except neo4j.exceptions.AuthError:
            raise PermissionError(
                f"Neo4j at {self.uri} rejected the credentials of user {self.user!r}"
            ) from None
        except neo4j.exceptions.ServiceUnavailable as e:
            raise ConnectionError(f"cannot reach Neo4j at {self.uri} within {timeout:.0f}s: {e}") from None
        self.store = Neo4jStore(self)

    def run(self, query: str, **params: Any) -> list[dict]:
        """A managed write transaction (retried on transient errors); returns the records as dicts."""
        with self.driver.session(database=self.database) as session:
            return session.execute_write(lambda tx: [r.data() for r in tx.run(query, **params)])

    def read(self, query: str, **params: Any) -> list[dict]:
        with self.driver.session(database=self.database) as session:
            return session.execute_read(lambda tx: [r.data() for r in tx.run(query, **params)])

    def close(self) -> None:
        with _DRIVERS_LOCK:
            _DRIVERS.pop((self.uri, self.user), None)
        self.driver.close()


SCHEMA = [
    "CREATE CONSTRAINT conversation_id IF NOT EXISTS FOR (c:Conversation) REQUIRE c.id IS UNIQUE",
    "CREATE CONSTRAINT message_id IF NOT EXISTS FOR (m:Message) REQUIRE m.id IS UNIQUE",
    "CREATE CONSTRAINT entity_name IF NOT EXISTS FOR (e:Entity) REQUIRE e.name IS UNIQUE",
    "CREATE CONSTRAINT document_id IF NOT EXISTS FOR (d:Document) REQUIRE d.id IS UNIQUE",
    "CREATE CONSTRAINT chunk_id IF NOT EXISTS FOR (c:Chunk) REQUIRE c.id IS UNIQUE",
    "CREATE FULLTEXT INDEX message_text IF NOT EXISTS FOR (m:Message) ON EACH [m.content]",
    "CREATE FULLTEXT INDEX chunk_text IF NOT EXISTS FOR (c:Chunk) ON EACH [c.text]",
]
VECTOR_INDEX = (
    "CREATE VECTOR INDEX {name} IF NOT EXISTS FOR (n:{label}) ON n.embedding "
    "OPTIONS {{indexConfig: {{`vector.dimensions`: {dim}, `vector.similarity_function`: 'cosine'}}}}"
)


class Neo4jStore(MemoryStore):
    def __init__(self, client: Neo4jClient):
        self.client = client

    def init_schema(self, dim: int) -> None:
        found = self.client.read("MATCH (s:SchemaVersion {id: 'memory'}) RETURN s.dim AS dim")
        widths = {r["dim"] for r in found} | self._vector_index_widths()
        if widths - {dim}:
            raise ValueError(
                f"Neo4j at {self.client.uri} holds {sorted(widths - {dim})}-dim embeddings; this embedder makes {dim}"
            )
        for statement in SCHEMA:
            self.client.run(statement)
        for name, label in (("message_embedding", "Message"), ("chunk_embedding", "Chunk")):
            self.client.run(VECTOR_INDEX.format(name=name, label=label, dim=int(dim)))  # dim: an int we made
        self.client.run("CALL db.awaitIndexes(60)")
        self.client.run(
            "MERGE (s:SchemaVersion {id: 'memory'}) SET s.version = $v, s.dim = $dim",
            v=SCHEMA_VERSION,
            dim=dim,
        )

    def _vector_index_widths(self) -> set[int]:
        rows = self.client.read(
            "SHOW VECTOR INDEXES YIELD name, options WHERE name IN ['message_embedding', 'chunk_embedding'] RETURN options"
        )
        return {int(r["options"]["indexConfig"]["vector.dimensions"]) for r in rows}

    def reset(self) -> None:
        """Delete every node and the vector indexes (tests; a new embedder width)."""
        self.client.run("MATCH (n) DETACH DELETE n")
        for name in ("message_embedding", "chunk_embedding"):
            self.client.run(f"DROP INDEX {name} IF EXISTS")  # our own constant names

    # -- conversations and messages -------------------------------------------------------------------------
    def create_conversation(self, c: Conversation) -> None:
        self.client.run(
            "MERGE (c:Conversation {id: $id}) ON CREATE SET c.title = $title, c.metadata = $meta, c.created_at = $at, c.next_seq = 0",
            id=c.id, title=c.title, meta=json.dumps(c.metadata), at=c.created_at,
        )  # fmt: skip

    def list_conversations(self, limit: int, offset: int) -> list[Conversation]:
        rows = self.client.read(
            "MATCH (c:Conversation) OPTIONAL MATCH (m:Message)-[:IN]->(c) WITH c, count(m) AS n "
            "RETURN c.id AS id, c.title AS title, c.metadata AS meta, c.created_at AS at, n ORDER BY at, id SKIP $offset LIMIT $limit",
            offset=offset, limit=limit,
        )  # fmt: skip
        return [
            Conversation(
                id=r["id"],
                title=r["title"],
                metadata=json.loads(r["meta"]),
                created_at=r["at"],
                message_count=r["n"],
            )
            for r in rows
        ]

    def delete_conversation(self, conversation_id: str) -> bool:
        rows = self.client.run(
            "MATCH (c:Conversation {id: $id}) OPTIONAL MATCH (m:Message)-[:IN]->(c) DETACH DELETE m, c RETURN count(DISTINCT c) AS n", id=conversation_id
        )  # fmt: skip
        return rows[0]["n"] > 0

    def add_message(self, m: Message, embedding: np.ndarray) -> Message:
        # SET on the conversation takes its write lock first, so concurrent writers get distinct sequence numbers.
        rows = self.client.run(
            "MATCH (c:Conversation {id: $cid}) SET c.next_seq = c.next_seq + 0 "
            "WITH c OPTIONAL MATCH (old:Message {id: $id}) "
            "WITH c, old, CASE WHEN old IS NULL THEN c.next_seq + 1 ELSE c.next_seq END AS seq "
            "SET c.next_seq = seq "
            "MERGE (m:Message {id: $id}) ON CREATE SET m.seq = seq, m.role = $role, m.content = $content, "
            "m.metadata = $meta, m.created_at = $at, m.conversation_id = $cid, m.embedding = $vec "
            "MERGE (m)-[:IN]->(c) RETURN m.seq AS seq",
            cid=m.conversation_id, id=m.id, role=m.role, content=m.content, meta=json.dumps(m.metadata),
            at=m.created_at, vec=[float(x) for x in embedding],
        )  # fmt: skip
        if not rows:
            raise KeyError(f"no conversation {m.conversation_id!r}")
        return m.model_copy(update={"seq": rows[0]["seq"]})

    def get_messages(self, conversation_id: str, limit: int, offset: int) -> list[Message]:
        rows = self.client.read(
            "MATCH (m:Message)-[:IN]->(:Conversation {id: $cid}) RETURN m ORDER BY m.seq SKIP $offset LIMIT $limit",
            cid=conversation_id, offset=offset, limit=limit,
        )  # fmt: skip
        return [_message(r["m"]) for r in rows]

    # -- entities ---------------------------------------------------------------------------------------------
    def upsert_entity(self, e: Entity) -> None:
        self.client.run(
            "MERGE (e:Entity {name: $name}) SET e.type = $type, e.description = $d, e.metadata = $meta",
            name=e.name, type=e.type, d=e.description, meta=json.dumps(e.metadata),
        )  # fmt: skip

    def get_entity(self, name: str) -> Entity | None:
        rows = self.client.read("MATCH (e:Entity {name: $name}) RETURN e", name=name)
        return _entity(rows[0]["e"]) if rows else None

    def delete_entity(self, name: str) -> bool:
        return (
            self.client.run("MATCH (e:Entity {name: $name}) DETACH DELETE e RETURN count(*) AS n", name=name)[
                0
            ]["n"]
            > 0
        )

    def list_entities(self, limit: int, offset: int) -> list[Entity]:
        rows = self.client.read(
            "MATCH (e:Entity) RETURN e ORDER BY e.name SKIP $offset LIMIT $limit", offset=offset, limit=limit
        )
        return [_entity(r["e"]) for r in rows]

    def add_relationship(self, r: Relationship) -> None:
        rows = self.client.run(
            "MATCH (a:Entity {name: $a}), (b:Entity {name: $b}) MERGE (a)-[x:RELATED {type: $type}]->(b) "
            "SET x.metadata = $meta RETURN count(x) AS n", a=r.source, b=r.target, type=r.type, meta=json.dumps(r.metadata)
        )  # fmt: skip
        if not rows or rows[0]["n"] == 0:
            raise KeyError(f"no entity {r.source!r} or {r.target!r}")

    def neighbours(self, name: str) -> list[Relationship]:
        rows = self.client.read(
            "MATCH (a:Entity)-[x:RELATED]->(b:Entity) WHERE a.name = $name OR b.name = $name "
            "RETURN a.name AS s, b.name AS t, x.type AS type, x.metadata AS meta ORDER BY s, t, type", name=name
        )  # fmt: skip
        return [
            Relationship(source=r["s"], target=r["t"], type=r["type"], metadata=json.loads(r["meta"]))
            for r in rows
        ]

    # -- documents --------------------------------------------------------------------------------------------
    def upsert_document(self, d: Document, chunks: list[str], embeddings: np.ndarray) -> None:
        self.client.run(
            "OPTIONAL MATCH (old:Document {id: $id}) OPTIONAL MATCH (c:Chunk)-[:OF]->(old) DETACH DELETE c, old "
            "WITH count(*) AS _ CREATE (d:Document {id: $id, url: $url, title: $title, content: $content, metadata: $meta, created_at: $at}) "
            "WITH d UNWIND $chunks AS ch CREATE (c:Chunk {id: $id + ':' + toString(ch.idx), idx: ch.idx, text: ch.text, "
            "embedding: ch.vec, document_id: $id})-[:OF]->(d)",
            id=d.id, url=d.url, title=d.title, content=d.content, meta=json.dumps(d.metadata), at=d.created_at,
            chunks=[{"idx": i, "text": t, "vec": [float(x) for x in v]} for i, (t, v) in enumerate(zip(chunks, embeddings, strict=True))],
        )  # fmt: skip

    def get_document(self, document_id: str) -> Document | None:
        rows = self.client.read("MATCH (d:Document {id: $id}) RETURN d", id=document_id)
        return _document(rows[0]["d"]) if rows else None

    def delete_document(self, document_id: str) -> bool:
        rows = self.client.run(
            "MATCH (d:Document {id: $id}) OPTIONAL MATCH (c:Chunk)-[:OF]->(d) DETACH DELETE c, d RETURN count(DISTINCT d) AS n", id=document_id
        )  # fmt: skip
        return rows[0]["n"] > 0

    def list_documents(self, limit: int, offset: int) -> list[Document]:
        rows = self.client.read(
            "MATCH (d:Document) RETURN d ORDER BY d.created_at, d.id SKIP $offset LIMIT $limit",
            offset=offset,
            limit=limit,
        )
        return [_document(r["d"]) for r in rows]

    # -- search -----------------------------------------------------------------------------------------------
    def vector_search(
        self, kind: str, query: np.ndarray, top_k: int, conversation_id: str | None = None
    ) -> list[SearchHit]:
        index = "message_embedding" if kind == "message" else "chunk_embedding"
        want = top_k * (8 if kind == "document" or conversation_id else 1)
        rows = self.client.read(
            "CALL db.index.vector.queryNodes($index, $k, $vec) YIELD node, score RETURN node, score ORDER BY score DESC",
            index=index, k=want, vec=[float(x) for x in query],
        )  # fmt: skip
        return self._hits(kind, rows, top_k, conversation_id)

    def keyword_search(self, kind: str, query: str, top_k: int) -> list[SearchHit]:
        words = re.findall(r"\w+", query)
        if not words:
            return []
        lucene = " OR ".join('"' + w + '"' for w in words)  # \w+ words, quoted: no Lucene syntax from users
        index = "message_text" if kind == "message" else "chunk_text"
        rows = self.client.read(
            "CALL db.index.fulltext.queryNodes($index, $q) YIELD node, score RETURN node, score ORDER BY score DESC LIMIT $k",
            index=index, q=lucene, k=top_k * 8,
        )  # fmt: skip
        return self._hits(kind, rows, top_k, None)

    def _hits(self, kind: str, rows: list[dict], top_k: int, conversation_id: str | None) -> list[SearchHit]:
        hits, seen = [], set()
        for r in rows:
            node = r["node"]
            if kind == "message":
                if conversation_id is not None and node["conversation_id"] != conversation_id:
                    continue
                hits.append(
                    SearchHit(
                        kind="message",
                        id=node["id"],
                        score=r["score"],
                        text=node["content"],
                        metadata={"conversation_id": node["conversation_id"]},
                    )
                )
            else:
                if node["document_id"] in seen:
                    continue
                seen.add(node["document_id"])
                doc = self.get_document(node["document_id"])
                hits.append(
                    SearchHit(
                        kind="document",
                        id=doc.id,
                        score=r["score"],
                        text=node["text"],
                        metadata={"url": doc.url, "title": doc.title, "chunk": node["idx"]},
                    )
                )
            if len(hits) == top_k:
                break
        return hits

    def stats(self) -> dict[str, int]:
        labels = {
            "conversations": "Conversation",
            "messages": "Message",
            "entities": "Entity",
            "documents": "Document",
            "chunks": "Chunk",
        }
        out = {
            name: self.client.read(f"MATCH (n:{label}) RETURN count(n) AS n")[0]["n"]
            for name, label in labels.items()
        }  # noqa: S608
        out["relationships"] = self.client.read(
            "MATCH (:Entity)-[x:RELATED]->(:Entity) RETURN count(x) AS n"
        )[0]["n"]
        order = ("conversations", "messages", "entities", "relationships", "documents", "chunks")
        return {k: out[k] for k in order}

    def close(self) -> None:
        """The driver is shared by the process; Neo4jClient.close() closes it."""


def _message(n: Any) -> Message:
    return Message(
        id=n["id"],
        conversation_id=n["conversation_id"],
        seq=n["seq"],
        role=n["role"],
        content=n["content"],
        metadata=json.loads(n["metadata"]),
        created_at=n["created_at"],
    )


def _entity(n: Any) -> Entity:
    return Entity(
        name=n["name"], type=n["type"], description=n["description"], metadata=json.loads(n["metadata"])
    )


def _document(n: Any) -> Document:
    return Document(
        id=n["id"],
        url=n["url"],
        title=n["title"],
        content=n["content"],
        metadata=json.loads(n["metadata"]),
        created_at=n["created_at"],
    )
