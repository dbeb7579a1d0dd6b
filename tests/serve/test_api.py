"""The HTTP API in-process (uvicorn on 127.0.0.1, no Ray): the official openai client, errors as 4xx JSON,
auth, size limits, conversations, decide, feedback, and a Schemathesis run over the OpenAPI spec."""

from __future__ import annotations

import gc
import re
import time

import httpx2 as httpx
import openai
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import ValidationError

from serve.api import create_app
from serve.build import build_coordinator
from serve.config import ServeConfig
from serve.local import LocalServer


@pytest.fixture(scope="module")
def server(meta_checkpoint, pages, tmp_path_factory):
    from tools import FetchSettings, ToolsConfig

    config = ServeConfig(
        meta_braider=str(meta_checkpoint), data_dir=str(tmp_path_factory.mktemp("api")), api_key="sk-test",
        tools=ToolsConfig(fetch=FetchSettings(allow=("127.0.0.1/32",), timeout_s=3.0)), max_tokens_limit=32,
        max_request_bytes=20_000,
    )  # fmt: skip
    coord = build_coordinator(config)
    with LocalServer(create_app(coord, config)) as srv:
        yield srv


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0)


def post(server, path: str, json=None, key: str | None = "sk-test", **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.url + path, json=json, headers=headers, timeout=60, **kw)


def test_openai_client_chat_completion(client):
    r = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "what is 2 + 2?"}], max_tokens=8, temperature=0
    )
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant" and isinstance(r.choices[0].message.content, str)
    assert (
        r.usage.completion_tokens > 0
        and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    )
    braid = r.model_extra["braid"]
    assert braid["decision"]["anchor"] in r.model and "policy confidence" in braid["explanation"]
    assert braid["task"]["type"] == "arithmetic"
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "what is 2 + 2?"}], max_tokens=2
    )
    app_ms = float(raw.headers["server-timing"].removeprefix("app;dur="))
    assert app_ms >= raw.parse().model_extra["braid"]["timings"]["total"]  # the app's time holds the turn's


def test_openai_client_streaming_matches_non_streaming(client):
    kwargs = {"model": "auto", "messages": [{"role": "user", "content": "def add(a, b):"}], "max_tokens": 8,
              "temperature": 0, "extra_body": {"braid": {"use_memory": False}}}  # fmt: skip
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, **kwargs))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].model_extra["braid"]["decision"] is not None


def test_models_and_decide(client, server):
    assert [m.id for m in client.models.list()] == ["auto"]
    r = post(server, "/v1/braid/decide", {"task": {"type": "code_completion", "complexity": 0.7}})
    assert r.status_code == 200 and "policy confidence" in r.json()["explanation"]
    r = post(server, "/v1/braid/decide", {"query": "def f(x):", "constraints": {"compute_budget": 0.01}})
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("infeasible")
    assert r.json()["error"]["code"].startswith("closest: ")


def test_bad_requests_get_clear_4xx_json(client, server):
    with pytest.raises(openai.BadRequestError, match="the last message must be a non-empty user message"):
        client.chat.completions.create(model="auto", messages=[{"role": "assistant", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="exceeds this server's limit of 32"):
        client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], max_tokens=999
        )
    with pytest.raises(openai.NotFoundError, match="unknown model 'gpt-9'"):
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    r = post(server, "/v1/chat/completions", content=b"{not json", key="sk-test")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = post(server, "/v1/chat/completions", {"messages": [{"role": "user", "content": "x" * 30_000}]})
    assert r.status_code == 413 and "exceeds 20000 bytes" in r.json()["error"]["message"]
    r = post(server, "/v1/feedback", {"response_id": "nope", "rating": 1})
    assert r.status_code == 404 and "no response with id 'nope'" in r.json()["error"]["message"]
    r = post(server, "/v1/feedback", {"response_id": "nope", "rating": 7})
    assert r.status_code == 400 and r.json()["error"]["param"] == "rating"


def test_auth(server):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert post(server, "/v1/chat/completions", body, key=None).status_code == 401
    r = post(server, "/v1/chat/completions", body, key="wrong")
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert httpx.get(server.url + "/healthz").status_code == 200  # health stays open for probes
    assert httpx.get(server.url + "/v1/models").status_code == 401


def test_the_page_is_open_and_its_data_behind_the_key(server):
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "<title>llm-braid</title>" in page.text
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(server.url + "/static/app.js").headers["content-type"].startswith("text/javascript")
    assert httpx.get(server.url + "/static/secret.py").status_code == 401  # only the page's own files
    assert httpx.get(server.url + "/v1/dashboard/sweeps").status_code == 401
    ok = httpx.get(server.url + "/v1/dashboard/decisions", headers={"Authorization": "Bearer sk-test"})
    assert ok.status_code == 200 and set(ok.json()) == {"by_type", "feedback", "recent"}
    bad = httpx.get(
        server.url + "/v1/dashboard/decisions?limit=0", headers={"Authorization": "Bearer sk-test"}
    )
    assert bad.status_code == 400 and "limit" in bad.json()["error"]["message"]


def test_open_endpoint_only_on_loopback(meta_checkpoint):
    ServeConfig(meta_braider=str(meta_checkpoint), api_key=None)  # 127.0.0.1 by default
    with pytest.raises(ValidationError, match="not loopback and no api_key is set"):
        ServeConfig(meta_braider=str(meta_checkpoint), api_key=None, host="0.0.0.0")
    ServeConfig(meta_braider=str(meta_checkpoint), api_key="k", host="0.0.0.0")


def test_conversations_and_feedback_over_http(client, server):
    conv = post(server, "/v1/conversations", {"title": "t"}).json()["id"]
    r = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hello there"}],
                                       max_tokens=4, extra_body={"braid": {"conversation_id": conv}})  # fmt: skip
    assert r.model_extra["braid"]["conversation_id"] == conv
    headers = {"Authorization": "Bearer sk-test"}
    msgs = httpx.get(f"{server.url}/v1/conversations/{conv}/messages", headers=headers).json()
    assert [m["role"] for m in msgs] == ["user", "assistant"] and msgs[0]["content"] == "hello there"
    assert any(c["id"] == conv for c in httpx.get(server.url + "/v1/conversations", headers=headers).json())
    fb = post(server, "/v1/feedback", {"response_id": r.id, "rating": 0.5})
    assert fb.status_code == 200 and fb.json()["learned"] is True
    assert httpx.delete(f"{server.url}/v1/conversations/{conv}", headers=headers).json()["deleted"]
    assert httpx.delete(f"{server.url}/v1/conversations/{conv}", headers=headers).status_code == 404
    metrics = httpx.get(server.url + "/metrics", headers=headers).text
    assert 'braid_requests_total{path="/v1/chat/completions",status="200"}' in metrics


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors_and_no_hangs(meta_checkpoint, tmp_path):
    """Every operation of our OpenAPI spec, with generated valid and invalid inputs: never a 5xx, never a
    hang (each call is under the request timeout and pytest's). Tools are off so random URLs are not fetched."""
    from hypothesis import given
    from schemathesis.checks import not_a_server_error

    config = ServeConfig(meta_braider=str(meta_checkpoint), data_dir=str(tmp_path), api_key=None,
                         use_tools=False, max_tokens_limit=4, request_timeout_s=30)  # fmt: skip
    coord = build_coordinator(config)
    app = create_app(coord, config)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  derandomize=True)  # fmt: skip
        def check(case):
            case.call_and_validate(checks=[not_a_server_error])

        check()
    statuses = {(path, status) for (path, status) in app.state.metrics.counts}
    assert ("/v1/chat/completions", 400) in statuses and (
        "/v1/braid/decide",
        200,
    ) in statuses  # both kinds ran
    assert not [s for s in statuses if s[1] >= 500]


def test_a_client_that_leaves_mid_stream_stops_the_generation(server):
    """Clients that leave after their first token: each stream's generator is closed (the stop counted, the
    braid freed) with the garbage collector off, so no stop may wait for a collection."""

    def stopped() -> int:
        text = httpx.get(
            server.url + "/metrics", headers={"Authorization": "Bearer sk-test"}, timeout=10
        ).text
        return int(re.search(r"^braid_streams_stopped_total (\d+)$", text, re.M).group(1))

    body = {
        "model": "auto",
        "stream": True,
        "max_tokens": 32,
        "temperature": 0,
        "messages": [{"role": "user", "content": "Once"}],
    }
    before, gc_was = stopped(), gc.isenabled()
    gc.disable()  # the server runs in this process: nothing may rely on a collection
    try:
        for _ in range(8):
            with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60,
                              headers={"Authorization": "Bearer sk-test"}) as r:  # fmt: skip
                lines = r.iter_lines()
                while '"content": ""' in (line := next(lines)) or not line:
                    pass  # the role chunk and blank separators: leave on the first token
    finally:
        if gc_was:
            gc.enable()
    deadline = time.monotonic() + 20
    while stopped() < before + 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stopped() == before + 8
