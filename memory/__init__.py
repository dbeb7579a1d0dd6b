"""Memory for the braid system: conversations, entities, documents and semantic search.

``MemoryManager()`` uses the embedded SQLite store under the data dir. The Neo4j backend is the memory
issue's second half (not built yet).
"""

from memory.embeddings import HashingEmbedder, MiniLMEmbedder, get_embedder
from memory.manager import MemoryManager, chunk_text, init_schema
from memory.sqlite_store import SQLiteStore

__all__ = [
    "HashingEmbedder",
    "MemoryManager",
    "MiniLMEmbedder",
    "SQLiteStore",
    "chunk_text",
    "get_embedder",
    "init_schema",
]
