"""Where llm-braid keeps things by default: one root, ``$BRAID_CACHE`` (default ``~/.cache/llm-braid``).

Every default path (zoo, sweeps, the meta-braider, the demo's work, serve.yaml's ``$BRAID_CACHE/...``) is
under it, so setting one variable moves them all. ``.env`` in the working directory is read for it too.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    value = os.environ.get("BRAID_CACHE") or _dotenv().get("BRAID_CACHE")
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
    """KEY=VALUE lines of ./.env (comments and blank lines skipped; quotes stripped)."""
    path = Path(".env")
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            out[key.strip().removeprefix("export ").strip()] = value.strip().strip("\"'")
    return out
