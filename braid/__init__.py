"""Braid frozen causal LMs by exchanging hidden states at chosen layers.

``from braid import ModelWrapper, BraidedLLM, BraidConfig``
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from braid.braided import BraidedLLM, BraidOutput
    from braid.config import BraidConfig, MemberConfig
    from braid.model_wrapper import ModelWrapper

# Loaded on first use: `braid --help` and the light subcommands never import torch.
_EXPORTS = {
    "BraidedLLM": "braid.braided",
    "BraidOutput": "braid.braided",
    "BraidConfig": "braid.config",
    "MemberConfig": "braid.config",
    "ModelWrapper": "braid.model_wrapper",
}
__all__ = ["BraidConfig", "BraidOutput", "BraidedLLM", "MemberConfig", "ModelWrapper"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'braid' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
