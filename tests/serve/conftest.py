"""Serve fixtures: configs that keep each test's state in its own directory (the meta-braider checkpoint and
the page server are session fixtures in tests/conftest.py)."""

from __future__ import annotations

import pytest


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
