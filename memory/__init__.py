"""Memory for the braid system: conversations, entities, documents and semantic search.

``MemoryManager()`` uses Neo4j when NEO4J_URI is set, else the embedded SQLite store under the data dir.
Seed usage: ``neo4j = Neo4jClient(); init_schema(neo4j); memory = MemoryManager(neo4j)``.
"""

from memory.embeddings import HashingEmbedder, MiniLMEmbedder, get_embedder
from memory.manager import MemoryManager, chunk_text, init_schema
from memory.neo4j_store import Neo4jClient, Neo4jStore
from memory.sqlite_store import SQLiteStore

__all__ = [
    "HashingEmbedder",
    "MemoryManager",
    "MiniLMEmbedder",
    "Neo4jClient",
    "Neo4jStore",
    "SQLiteStore",
    "chunk_text",
    "get_embedder",
    "init_schema",
]
