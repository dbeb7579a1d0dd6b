"""Coordinator and the Ray Serve app with an OpenAI-compatible API (coordinator issue)."""
