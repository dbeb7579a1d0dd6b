"""Serving: the Coordinator (memory, tools, meta-braider, braid) and its OpenAI-compatible HTTP API, under
uvicorn or as a Ray Serve application (``serve.app``)."""

from serve.config import ServeConfig
from serve.coordinator import Coordinator, RunResult

__all__ = ["Coordinator", "RunResult", "ServeConfig"]
