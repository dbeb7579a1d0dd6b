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


def test_client_errors_name_the_problem(server):
    from memory import Neo4jClient
    from memory.neo4j_server import free_port

    with pytest.raises(PermissionError, match="rejected the credentials"):
        Neo4jClient(server.uri, "neo4j", "wrong")
    start = time.time()
    with pytest.raises(ConnectionError, match="cannot reach Neo4j"):
        Neo4jClient(f"bolt://127.0.0.1:{free_port()}", "neo4j", "x", timeout=2)
    assert time.time() - start < 10
    with pytest.raises(ValueError, match="NEO4J_URI"):
        Neo4jClient(uri="")
