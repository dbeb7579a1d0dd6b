"""The store interface every memory backend implements, and the records it stores."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

SCHEMA_VERSION = 1


class Message(BaseModel):
    id: str
    conversation_id: str
    seq: int = 0  # position in the conversation, assigned by the store
    role: str
    content: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: float


class Conversation(BaseModel):
    id: str
    title: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    message_count: int = 0


# One limit on every backend: Neo4j's index refuses keys over ~8 KB, so names stop at 1024 characters
# (at most 4 KB of UTF-8) on SQLite too.
MAX_NAME = 1024


class Entity(BaseModel):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    type: str = Field(min_length=1, max_length=MAX_NAME)
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class Relationship(BaseModel):
    source: str = Field(min_length=1, max_length=MAX_NAME)
    target: str = Field(min_length=1, max_length=MAX_NAME)
    type: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class Document(BaseModel):
    id: str
    url: str
    title: str
    content: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: float


class SearchHit(BaseModel):
    kind: Literal["message", "document"]
    id: str  # message id, or document id
    score: float
    text: str  # the message, or the matching chunk
    metadata: dict[str, Any] = Field(default_factory=dict)  # conversation_id / url, title, chunk


class MemoryStore(ABC):
    """A backend. Writes are transactional and idempotent on stable ids; reads never see partial writes."""

    @abstractmethod
    def init_schema(self, dim: int) -> None: ...

    @abstractmethod
    def create_conversation(self, conversation: Conversation) -> None: ...

    @abstractmethod
    def list_conversations(self, limit: int, offset: int) -> list[Conversation]: ...

    @abstractmethod
    def delete_conversation(self, conversation_id: str) -> bool: ...

    @abstractmethod
    def add_message(self, message: Message, embedding: np.ndarray) -> Message: ...

    @abstractmethod
    def get_messages(self, conversation_id: str, limit: int, offset: int) -> list[Message]: ...

    @abstractmethod
    def upsert_entity(self, entity: Entity) -> None: ...

    @abstractmethod
    def get_entity(self, name: str) -> Entity | None: ...

    @abstractmethod
    def delete_entity(self, name: str) -> bool: ...

    @abstractmethod
    def list_entities(self, limit: int, offset: int) -> list[Entity]: ...

    @abstractmethod
    def add_relationship(self, relationship: Relationship) -> None: ...

    @abstractmethod
    def neighbours(self, name: str) -> list[Relationship]: ...

    @abstractmethod
    def upsert_document(self, document: Document, chunks: list[str], embeddings: np.ndarray) -> None: ...

    @abstractmethod
    def get_document(self, document_id: str) -> Document | None: ...

    @abstractmethod
    def delete_document(self, document_id: str) -> bool: ...

    @abstractmethod
    def list_documents(self, limit: int, offset: int) -> list[Document]: ...

    @abstractmethod
    def vector_search(
        self, kind: str, query: np.ndarray, top_k: int, conversation_id: str | None = None
    ) -> list[SearchHit]: ...

    @abstractmethod
    def keyword_search(self, kind: str, query: str, top_k: int) -> list[SearchHit]: ...

    @abstractmethod
    def stats(self) -> dict[str, int]: ...

    @abstractmethod
    def close(self) -> None: ...
