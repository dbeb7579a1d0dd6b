"""The shared suite every backend passes."""

import threading

import pytest

from memory import HashingEmbedder, MemoryManager, SQLiteStore, chunk_text


def test_conversation_round_trip_with_order_and_pagination(manager):
    conv = manager.create_conversation(title="t", metadata={"user": "u1"})
    ids = [
        manager.add_message(conv, "user" if i % 2 == 0 else "assistant", f"message {i}") for i in range(12)
    ]
    history = manager.get_conversation_history(conv)
    assert [m["id"] for m in history] == ids
    assert [m["seq"] for m in history] == list(range(1, 13))
    assert history[0]["role"] == "user" and history[0]["created_at"] <= history[-1]["created_at"]
    assert [m["id"] for m in manager.get_conversation_history(conv, limit=5, offset=5)] == ids[5:10]
    listed = manager.list_conversations()
    assert (
        listed[0]["id"] == conv
        and listed[0]["message_count"] == 12
        and listed[0]["metadata"] == {"user": "u1"}
    )


def test_adding_a_message_twice_with_its_id_is_idempotent(manager):
    conv = manager.create_conversation()
    manager.add_message(conv, "user", "hello", message_id="m-1")
    manager.add_message(conv, "user", "hello", message_id="m-1")
    assert len(manager.get_conversation_history(conv)) == 1


def test_delete_forgets_a_conversation_and_its_messages(manager):
    conv = manager.create_conversation()
    manager.add_message(conv, "user", "forget me about zebras")
    other = manager.create_conversation()
    manager.add_message(other, "user", "keep me")
    assert manager.delete_conversation(conv)
    assert manager.get_conversation_history(conv) == []
    assert manager.keyword_search("message", "zebras") == []
    assert manager.stats()["messages"] == 1 and not manager.delete_conversation(conv)


def test_message_into_a_missing_conversation_is_an_error(manager):
    with pytest.raises(KeyError, match="no conversation"):
        manager.add_message("nope", "user", "hi")


def test_entities_relationships_and_neighbourhood(manager):
    manager.create_entity("Python", "language", "Programming language")
    manager.create_entity("Django", "framework", "Web framework", metadata={"since": 2005})
    manager.create_entity_relationship("Python", "Django", "HAS_FRAMEWORK")
    assert manager.get_entity("Django")["metadata"] == {"since": 2005}
    assert manager.get_entity_neighbourhood("Python") == [
        {"source": "Python", "target": "Django", "type": "HAS_FRAMEWORK", "metadata": {}}
    ]
    manager.create_entity("Python", "language", "updated")  # upsert on the stable name
    assert manager.get_entity("Python")["description"] == "updated"
    assert manager.delete_entity("Django") and manager.get_entity_neighbourhood("Python") == []


@pytest.mark.parametrize(
    "name", ["O'Reilly", 'say "hi"', "`tick`", "MATCH (n) DETACH DELETE n", "x}) RETURN 1 //"]
)
def test_hostile_names_are_stored_verbatim(manager, name):
    manager.create_entity("anchor", "thing")
    manager.create_entity(name, "MERGE `type`'", "d")
    manager.create_entity_relationship(name, "anchor", "LINKS_TO")
    assert manager.get_entity(name)["type"] == "MERGE `type`'"
    assert manager.get_entity_neighbourhood("anchor")[0]["source"] == name
    assert manager.stats()["entities"] == 2


def test_entity_names_have_one_limit_on_every_backend(manager):
    """Neo4j's index refused names over ~8 KB while SQLite stored them: 1024 characters on both."""
    from memory.store import MAX_NAME

    widest = "\U0001f600" * MAX_NAME  # 4 bytes each in UTF-8: the longest name at its largest
    manager.create_entity(widest, "t")
    assert manager.get_entity(widest)["name"] == widest
    before = manager.stats()
    with pytest.raises(ValueError, match="at most 1024 characters"):
        manager.create_entity("x" * (MAX_NAME + 1), "t")
    with pytest.raises(ValueError, match="at most 1024 characters"):
        manager.create_entity_relationship(widest, "y" * (MAX_NAME + 1), "LINKS_TO")
    assert manager.stats() == before


def test_the_seeds_relationship_creates_the_missing_entity_and_types_are_normalised(manager):
    manager.create_entity("Python", "language", "Programming language")
    assert manager.create_entity_relationship("Python", "Django", "HAS_FRAMEWORK") == "HAS_FRAMEWORK"
    assert manager.get_entity("Django")["type"] == "entity"  # created by the relationship
    manager.create_entity("Django", "framework", "Web framework")  # described later: an upsert
    assert manager.get_entity("Django")["type"] == "framework"
    for written in ("has framework", "has-framework", "hasFramework", "Has.Framework"):
        assert manager.create_entity_relationship("Python", "Django", written) == "HAS_FRAMEWORK"
    assert manager.get_entity_neighbourhood("Django") == [
        {"source": "Python", "target": "Django", "type": "HAS_FRAMEWORK", "metadata": {}}
    ]
    assert manager.stats()["entities"] == 2


@pytest.mark.parametrize("rel", ["HAS`]->(x) DELETE x //", "1ST_OF", "KNOWS'", "", "A" * 65])
def test_bad_relationship_types_are_refused_and_change_nothing(manager, rel):
    manager.create_entity("a", "t")
    before = manager.stats()
    with pytest.raises(ValueError, match="invalid relationship type"):
        manager.create_entity_relationship("a", "b", rel)  # b is not created either
    assert manager.stats() == before


def test_documents_are_chunked_replaced_by_url_and_deleted(manager):
    text = " ".join(f"Sentence number {i} talks about braiding models." for i in range(80))
    doc = manager.store_document("https://example.org/a", "Braiding", text, metadata={"lang": "en"})
    assert manager.stats()["chunks"] == len(chunk_text(text)) > 1
    assert manager.store_document("https://example.org/a", "Braiding v2", "short") == doc
    assert manager.get_document(doc)["title"] == "Braiding v2" and manager.stats()["chunks"] == 1
    hits = manager.semantic_search_documents("short", top_k=3)
    assert hits[0]["metadata"]["url"] == "https://example.org/a"
    assert manager.delete_document(doc) and manager.get_document(doc) is None


def test_keyword_search_takes_any_query_text_safely(manager):
    conv = manager.create_conversation()
    manager.add_message(conv, "user", "the NEAR operator and quotes are just words here")
    for query in ['"unbalanced', "NEAR(a b)", "a OR", "*", "quotes AND (near"]:
        manager.keyword_search("message", query)  # never an FTS syntax error
    assert manager.keyword_search("message", "quotes")[0]["text"].startswith("the NEAR")


def test_eight_threads_writing_one_conversation(manager):
    conv = manager.create_conversation()

    def write(t: int) -> None:
        for i in range(200):
            manager.add_message(conv, "user", f"thread {t} message {i}")

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    history = manager.get_conversation_history(conv, limit=10_000)
    assert len(history) == 1600 and [m["seq"] for m in history] == list(range(1, 1601))
    for t in range(8):  # each thread's own messages keep their order
        mine = [int(m["content"].split()[-1]) for m in history if m["content"].startswith(f"thread {t} ")]
        assert mine == list(range(200))
    assert manager.get_conversation_history(conv, limit=10_000) == history  # stable on re-read


def test_reopening_keeps_everything_and_checks_the_embedding_width(tmp_path):
    path = tmp_path / "m.sqlite"
    mm = MemoryManager(SQLiteStore(path), embedder=HashingEmbedder(dim=64))
    conv = mm.create_conversation()
    mm.add_message(conv, "user", "persist me")
    mm.close()
    again = MemoryManager(SQLiteStore(path), embedder=HashingEmbedder(dim=64))
    assert again.get_conversation_history(conv)[0]["content"] == "persist me"
    again.close()
    with pytest.raises(ValueError, match="64-dim"):
        MemoryManager(SQLiteStore(path), embedder=HashingEmbedder(dim=32))


def test_an_embedder_of_another_width_is_refused(manager):
    conv = manager.create_conversation()
    manager.add_message(conv, "user", "kept")
    with pytest.raises(ValueError, match="256"):
        MemoryManager(manager.store, embedder=HashingEmbedder(dim=32))
    assert manager.get_conversation_history(conv)[0]["content"] == "kept"
