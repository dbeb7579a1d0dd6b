"""Serve fixtures: a meta-braider over the tiny zoo (saved like `braid meta train` saves it), a local page
server for tool calls, and configs that keep each test's state in its own directory."""

from __future__ import annotations

import pytest
import torch

from tests.tools.conftest import ReplayServer


@pytest.fixture(scope="session")
def meta_checkpoint(tiny_zoo, tmp_path_factory):
    from braid.meta import MetaBraider
    from braid.zoo import load_cards
    from tune.records import ModelFeatures

    cache, paths = tiny_zoo
    pool = [ModelFeatures.from_card(c) for c in load_cards(tiny=True, cache_dir=cache)]
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("meta") / "meta-braider.pt"
    MetaBraider(pool, paths=paths).save(path)
    return path


@pytest.fixture(scope="session")
def pages():
    server = ReplayServer()
    yield server
    server.close()


@pytest.fixture
def serve_config(meta_checkpoint, pages, tmp_path):
    """make(**overrides) -> a ServeConfig whose tools may reach the page server (and only it)."""
    from serve.config import ServeConfig
    from tools import FetchSettings, ToolsConfig

    def make(**overrides):
        base = {
            "meta_braider": str(meta_checkpoint),
            "data_dir": str(tmp_path / "state"),
            "api_key": None,
            "tools": ToolsConfig(fetch=FetchSettings(allow=("127.0.0.1/32",), timeout_s=3.0)),
            "max_tokens_limit": 32,
        }
        return ServeConfig(**{**base, **overrides})

    return make
