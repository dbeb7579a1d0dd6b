"""What a client can send: numbers outside what the code handles, coerced types, keys in config."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.security.conftest import call


@pytest.mark.parametrize("target", [1e6, -1e6, 999_999.5])
@pytest.mark.parametrize("path", ["/v1/braid/decide", "/v1/chat/completions"])
def test_extreme_score_floors_are_answered_not_500(server, path, target):
    """A raw score floor of 1e6 (then accuracy_target) overflowed math.exp in the decision's predicted
    latency (a 500)."""
    constraints = {"min_score": target}
    body = (
        {"query": "what is 2 + 2?", "constraints": constraints}
        if path.endswith("decide")
        else {"messages": [{"role": "user", "content": "what is 2 + 2?"}], "max_tokens": 2,
              "braid": {"constraints": constraints, "use_tools": False}}
    )  # fmt: skip
    r = call(server, "POST", path, body)
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        assert r.json()["error"]["message"].startswith("infeasible")


@pytest.mark.parametrize(
    "body, param",
    [
        ({"stream": "yes"}, "stream"),
        ({"max_tokens": "8"}, "max_tokens"),
        ({"temperature": "0.5"}, "temperature"),
        ({"braid": {"constraints": {"latency_requirement": 1e9}}}, "braid.constraints.latency_requirement"),
        ({"braid": {"constraints": {"accuracy_target": 90}}}, "braid.constraints.accuracy_target"),
    ],
)
def test_wrong_types_and_out_of_range_numbers_are_400_naming_the_field(server, body, param):
    r = call(
        server, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], **body}
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_400(server, value):
    """Python's JSON parser reads NaN and Infinity; they must not reach the meta-braider."""
    raw = '{"query": "hi", "constraints": {"accuracy_target": VALUE}}'.replace("VALUE", value)
    r = call(
        server, "POST", "/v1/braid/decide", content=raw.encode(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "finite" in r.json()["error"]["message"], r.text


def test_an_empty_api_key_in_yaml_is_no_key(meta_checkpoint, tmp_path, monkeypatch):
    """`api_key: ""` switched auth off while passing the `is None` check of the loopback-only rule."""
    from serve.config import ServeConfig

    monkeypatch.delenv("BRAID_API_KEY", raising=False)
    path = tmp_path / "serve.yaml"
    path.write_text(f'meta_braider: {meta_checkpoint}\nhost: 0.0.0.0\napi_key: ""\n')
    with pytest.raises(ValidationError, match="not loopback and no api_key"):
        ServeConfig.from_yaml(path)
    path.write_text(f'meta_braider: {meta_checkpoint}\napi_key: "  "\n')
    assert ServeConfig.from_yaml(path).api_key is None  # loopback: allowed, and the same "no key"
    monkeypatch.setenv("BRAID_API_KEY", "")
    with pytest.raises(ValidationError, match="not loopback and no api_key"):
        ServeConfig(meta_braider=str(meta_checkpoint), host="0.0.0.0")
