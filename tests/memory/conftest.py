import os

import pytest

from memory import HashingEmbedder, MemoryManager, SQLiteStore

BACKENDS = ["sqlite", "neo4j"]


@pytest.fixture(scope="session")
def neo4j_settings(tmp_path_factory):
    """(uri, user, password): NEO4J_URI if set, else a real Neo4j 5 started for this session."""
    pytest.importorskip("neo4j")
    if os.environ.get("NEO4J_URI"):
        yield (
            os.environ["NEO4J_URI"],
            os.environ.get("NEO4J_USER", "neo4j"),
            os.environ.get("NEO4J_PASSWORD", ""),
        )
        return
    from memory.neo4j_server import Neo4jServer

    with Neo4jServer(tmp_path_factory.mktemp("neo4j")) as server:
        yield server.uri, *server.auth


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
