import pytest

from memory import HashingEmbedder, MemoryManager, SQLiteStore

BACKENDS = ["sqlite", "neo4j"]


@pytest.fixture(params=BACKENDS)
def manager(request, tmp_path):
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "memory.sqlite")
    else:
        from memory.neo4j_store import Neo4jClient

        uri, user, password = request.getfixturevalue("neo4j_settings")
        store = Neo4jClient(uri, user, password).store
        store.reset()  # each test starts from an empty graph
    mm = MemoryManager(store, embedder=HashingEmbedder())
    yield mm
    mm.close()
