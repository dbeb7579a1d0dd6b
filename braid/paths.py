"""Where llm-braid keeps things by default: one root, ``$BRAID_CACHE`` (default ``~/.cache/llm-braid``).

Every default path (zoo, sweeps, the meta-braider, the demo's work, serve.yaml's ``$BRAID_CACHE/...``) is
under it, so setting one variable moves them all.

Settings (``setting``): a command-line flag beats a config file, which beats the environment, which beats
``.env`` (the nearest one at or above the working directory, read with python-dotenv), which beats the
default. ``.env.example`` lists every name read.
"""

from __future__ import annotations

import os
from pathlib import Path


def setting(name: str, default: str | None = None) -> str | None:
    """``name`` from the environment, else from ``.env``, else ``default`` (empty values count as unset)."""
    return os.environ.get(name) or _dotenv().get(name) or default


def cache_dir() -> Path:
    value = setting("BRAID_CACHE")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "llm-braid"


def demo_dir() -> Path:
    """Where ``make demo`` (``braid demo``) writes its zoo sweep, records and meta-braider."""
    return cache_dir() / "demo"


def default_agent() -> Path:
    """The meta-braider ``braid meta`` reads and writes by default: one you trained (``meta-braider.pt``),
    else the demo's."""
    own = cache_dir() / "meta-braider.pt"
    demo = demo_dir() / "meta-braider.pt"
    return demo if not own.exists() and demo.exists() else own


def expand(path: str) -> str:
    """``~`` and environment variables, with ``$BRAID_CACHE`` / ``${BRAID_CACHE}`` meaning ``cache_dir()``
    even when the variable is unset (serve.yaml writes its paths that way)."""
    for token in ("${BRAID_CACHE}", "$BRAID_CACHE"):
        path = path.replace(token, str(cache_dir()))
    return os.path.expandvars(os.path.expanduser(path))


def _dotenv() -> dict[str, str]:
    """The values of the nearest ``.env`` at or above the working directory (none: empty)."""
    from dotenv import dotenv_values, find_dotenv

    path = find_dotenv(usecwd=True)
    return {k: v for k, v in dotenv_values(path).items() if v is not None} if path else {}
