"""The meta-braider: learns which models to braid, where, how and with which parameters."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meta.agent import Infeasible, MetaBraider
    from meta.decision import BraidingDecision
    from meta.features import Constraints, MetaTask
    from meta.net import DecisionNet, DecisionSpace

# Loaded on first use, so `braid meta --help` never imports torch.
_EXPORTS = {
    "BraidingDecision": "meta.decision",
    "Constraints": "meta.features",
    "DecisionNet": "meta.net",
    "DecisionSpace": "meta.net",
    "Infeasible": "meta.agent",
    "MetaBraider": "meta.agent",
    "MetaTask": "meta.features",
}
__all__ = [
    "BraidingDecision",
    "Constraints",
    "DecisionNet",
    "DecisionSpace",
    "Infeasible",
    "MetaBraider",
    "MetaTask",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'meta' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
