"""A real Neo4j 5, launched from Maven Central artifacts, reached with the official driver."""

import os
import time

import pytest

neo4j = pytest.importorskip("neo4j")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if os.environ.get("NEO4J_URI"):
        pytest.skip("NEO4J_URI is set: the suite uses that server instead")
    from memory.neo4j_server import Neo4jServer

    with Neo4jServer(tmp_path_factory.mktemp("neo4j")) as running:
        yield running


def test_driver_connects_and_runs_cypher(server):
    with neo4j.GraphDatabase.driver(server.uri, auth=server.auth) as driver:
        driver.verify_connectivity()
        records, _, _ = driver.execute_query("RETURN $x + 1 AS y", x=41)
        assert records[0]["y"] == 42
        version = driver.get_server_info().agent
    assert version.startswith("Neo4j/5.")


def test_wrong_password_is_a_clear_error(server):
    driver = neo4j.GraphDatabase.driver(server.uri, auth=("neo4j", "wrong"))
    with driver, pytest.raises(neo4j.exceptions.AuthError):
        driver.verify_connectivity()


def test_unreachable_server_fails_fast():
    from memory.neo4j_server import free_port

    start = time.time()
    with (
        neo4j.GraphDatabase.driver(
            f"bolt://127.0.0.1:{free_port()}", auth=("neo4j", "x"), connection_timeout=2
        ) as driver,
        pytest.raises(neo4j.exceptions.ServiceUnavailable),
    ):
        driver.verify_connectivity()
    assert time.time() - start < 10


def test_client_errors_name_the_problem(server, monkeypatch, tmp_path):
    from memory import Neo4jClient
    from memory.neo4j_server import free_port

    with pytest.raises(PermissionError, match="rejected the credentials"):
        Neo4jClient(server.uri, "neo4j", "wrong")
    start = time.time()
    with pytest.raises(ConnectionError, match="cannot reach Neo4j"):
        Neo4jClient(f"bolt://127.0.0.1:{free_port()}", "neo4j", "x", timeout=2)
    assert time.time() - start < 10
    for key in ("NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here either
    if _listening(7687):
        pytest.skip("something listens on localhost:7687 here")
    with pytest.raises(ConnectionError, match="bolt://localhost:7687"):  # the seed's default, named
        Neo4jClient(uri="", timeout=2)


def test_the_seed_flow_configured_from_the_environment(neo4j_settings, monkeypatch):
    from memory import HashingEmbedder, MemoryManager, Neo4jClient, init_schema

    uri, user, password = neo4j_settings
    for key, value in {"NEO4J_URI": uri, "NEO4J_USER": user, "NEO4J_PASSWORD": password}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("BRAID_EMBEDDER", "hashing")
    client = Neo4jClient()
    client.store.reset()
    init_schema(client)
    memory = MemoryManager(client)
    conv_id = memory.create_conversation()
    memory.add_message(conv_id, "user", "Hello")
    assert [m["content"] for m in memory.get_conversation_history(conv_id)] == ["Hello"]
    memory.create_entity("Python", "language", "Programming language")
    memory.create_entity("Django", "framework", "Web framework")
    memory.create_entity_relationship("Python", "Django", "HAS_FRAMEWORK")
    assert memory.semantic_search_messages("hello", top_k=10)[0]["text"] == "Hello"
    assert isinstance(MemoryManager(embedder=HashingEmbedder()).store, type(client.store))  # NEO4J_URI wins


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
