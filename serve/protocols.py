"""What the Coordinator needs from its collaborators, as protocols: a source of braids by key, a memory, a
tool executor and a response log. ``LocalBraids`` (braids in this process) and ``ServeBraids`` (braids in
Serve replicas) are braid sources; ``memory.MemoryManager`` and ``tools.ToolExecutor`` satisfy the others
structurally, so serve/ names what it uses without the coordinator probing for features."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from braid.sampling import SamplingParams
    from serve.braids import Generated


class BraidSource(Protocol):
    def known(self, key: str) -> bool:
        """True for a pinned braid's name or a braid structure key (``BraidSpec.key()``)."""

    def check(self, key: str) -> None:
        """ValueError unless this server builds ``key`` (read before any weights load)."""

    def pinned_names(self) -> list[str]: ...

    def generate(self, key: str, prompt: str, params: SamplingParams) -> Generated: ...

    def stream(self, key: str, prompt: str, params: SamplingParams) -> Iterator[str]: ...

    def planner_context(self, key: str) -> tuple[Any, Callable[[str, int], str]] | None:
        """(tokenizer, generate) of the braid for a model-driven tool planner; None where the braid lives in
        another process (the planner then follows its rules)."""


class Memory(Protocol):
    def create_conversation(
        self, title: str | None = None, metadata: dict | None = None, conversation_id: str | None = None
    ) -> str: ...

    def add_message(
        self, conversation_id: str, role: str, content: str, metadata: dict | None = None
    ) -> str: ...

    def get_conversation_history(
        self, conversation_id: str, limit: int = 100, offset: int = 0
    ) -> list[dict]: ...

    def list_conversations(self, limit: int = 50, offset: int = 0) -> list[dict]: ...

    def delete_conversation(self, conversation_id: str) -> bool: ...

    def semantic_search_messages(
        self, query: str, top_k: int = 10, conversation_id: str | None = None
    ) -> list[dict]: ...

    def semantic_search_documents(self, query: str, top_k: int = 5) -> list[dict]: ...

    def store_document(self, url: str, title: str, content: str, metadata: dict | None = None) -> str: ...


class Tools(Protocol):
    def list_tools(self) -> list[dict]: ...

    def execute(self, name: str, arguments: dict) -> Any: ...


class ResponseLog(Protocol):
    def add(
        self, response_id: str, *, model: str, query: str, answer: str, conversation_id: str | None = None,
        task: dict | None = None, decision: dict | None = None, owner: str | None = None,
    ) -> None: ...  # fmt: skip

    def get(self, response_id: str) -> dict | None: ...

    def add_feedback(self, response_id: str, rating: float, comment: str | None = None) -> int | None: ...

    def recent(self, limit: int = 200) -> list[dict]: ...
