"""Ray Serve direct ingress (``direct_ingress: true``): a gateway replica answers on its own port, skipping
the proxy, with the same answers, streaming and auth as through the proxy."""

from __future__ import annotations

import httpx2 as httpx
import openai
import pytest

from serve.app import DIRECT_INGRESS_ENV
from tests.serve.test_serve_app import KEY, chat, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def direct(meta_checkpoint, tmp_path_factory):
    import ray
    from ray import serve

    from serve.app import direct_urls, run
    from serve.config import BraidDeploymentConfig, ServeConfig

    if ray.is_initialized():  # run() must start Ray itself to switch direct ingress on
        ray.shutdown()
    config = ServeConfig(
        meta_braider=str(meta_checkpoint), data_dir=str(tmp_path_factory.mktemp("direct")), api_key=KEY,
        port=free_port(), use_tools=False, max_tokens_limit=16, ingress_cpus=0.25, direct_ingress=True,
        deployment=BraidDeploymentConfig(replica_cpus=0.5, max_replicas=1),
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as env:  # what run() would set, undone for later modules
        for key, value in DIRECT_INGRESS_ENV.items():
            env.setenv(key, value)
        try:
            run(config)
            yield f"http://127.0.0.1:{config.port}", direct_urls(config)
        finally:
            serve.shutdown()
            ray.shutdown()


def test_a_gateway_replica_answers_on_its_own_port(direct):
    proxy, urls = direct
    assert len(urls) == 1 and urls[0].startswith("http://127.0.0.1:") and urls[0] != proxy
    via_proxy, via_replica = (
        openai.OpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0) for base in (proxy, urls[0])
    )
    r = chat(via_replica, "what is 5 + 6?", temperature=0)
    assert r.usage.completion_tokens > 0
    assert (
        r.choices[0].message.content
        == chat(via_proxy, "what is 5 + 6?", temperature=0).choices[0].message.content
    )
    streamed = chat(via_replica, "what is 5 + 6?", temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == r.choices[0].message.content


def test_auth_and_limits_hold_on_the_direct_port(direct):
    _, urls = direct
    assert httpx.get(urls[0] + "/v1/models").status_code == 401
    with pytest.raises(openai.AuthenticationError):
        chat(openai.OpenAI(base_url=urls[0] + "/v1", api_key="wrong", max_retries=0), "hi")
    big = {"model": "auto", "messages": [{"role": "user", "content": "x" * 300_000}]}
    r = httpx.post(urls[0] + "/v1/chat/completions", json=big, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 413 and "bytes" in r.text
