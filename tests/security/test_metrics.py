"""/metrics: labels from a fixed set, valid Prometheus text whatever the client sends."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.security.conftest import call


def series(text: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def test_unauthenticated_paths_cannot_write_labels_into_metrics(server):
    hostile = "/zz%22%7D%201e9%0Abraid_requests_total%7Bpath%3D%22/v1/x%22%7D%20"
    assert call(server, "GET", hostile, key=None).status_code == 401
    for i in range(50):  # each new path used to add a label set
        call(server, "GET", f"/nope/{i}", key=None)
    call(server, "GET", "/v1/conversations/abc/messages")  # a route with a parameter: its template
    text = call(server, "GET", "/metrics").text
    samples = series(text)  # parses: the text format held
    paths = {s.labels["path"] for s in samples if "path" in s.labels}
    assert "/v1/x" not in paths and not any("zz" in p or "nope" in p for p in paths), paths
    assert "other" in paths and "/v1/conversations/{conversation_id}/messages" in paths
    assert len(paths) <= 12
    others = [
        s
        for s in samples
        if s.name == "braid_requests_total" and s.labels == {"path": "other", "status": "401"}
    ]
    assert others and others[0].value >= 51
