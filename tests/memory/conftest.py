import pytest

from memory import HashingEmbedder, MemoryManager, SQLiteStore

BACKENDS = ["sqlite"]  # the Neo4j backend joins this list when it lands


@pytest.fixture(params=BACKENDS)
def manager(request, tmp_path):
    store = SQLiteStore(tmp_path / "memory.sqlite")
    mm = MemoryManager(store, embedder=HashingEmbedder())
    yield mm
    mm.close()
