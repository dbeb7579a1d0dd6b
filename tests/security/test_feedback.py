"""Feedback: one rating per answer, from the principal that received it."""

from __future__ import annotations

from tests.security.conftest import call


def chat(server, user: str | None = None) -> str:
    body = {"messages": [{"role": "user", "content": "what is 3 + 4?"}], "max_tokens": 2,
            "braid": {"use_tools": False, "use_memory": False}, **({"user": user} if user else {})}  # fmt: skip
    r = call(server, "POST", "/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def test_a_replayed_rating_is_409_and_applies_no_second_update(server):
    rid = chat(server)
    first = call(server, "POST", "/v1/feedback", {"response_id": rid, "rating": 1})
    assert first.status_code == 200 and first.json()["learned"] is True
    updates = server.coordinator.meta.updates
    for _ in range(4):  # five identical posts used to apply five online updates
        again = call(server, "POST", "/v1/feedback", {"response_id": rid, "rating": 1})
        assert again.status_code == 409 and again.json()["error"]["type"] == "conflict"
    assert server.coordinator.meta.updates == updates


def test_ratings_are_tied_to_the_user_that_received_the_answer(server):
    rid = chat(server, user="alice")
    r = call(server, "POST", "/v1/feedback", {"response_id": rid, "rating": -1, "user": "mallory"})
    assert r.status_code == 404 and "no response with id" in r.json()["error"]["message"]
    r = call(server, "POST", "/v1/feedback", {"response_id": rid, "rating": -1})  # no user: another owner
    assert r.status_code == 404
    r = call(server, "POST", "/v1/feedback", {"response_id": rid, "rating": -1, "user": "alice"})
    assert r.status_code == 200
