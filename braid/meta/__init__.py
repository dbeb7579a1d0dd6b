"""The meta-braider: learns which models to braid, where, how and with which parameters."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from braid.meta.agent import Infeasible, MetaBraider
    from braid.meta.decision import BraidingDecision
    from braid.meta.features import Constraints, MetaTask
    from braid.meta.net import DecisionNet, DecisionSpace

# Loaded on first use, so `braid meta --help` never imports torch.
_EXPORTS = {
    "BraidingDecision": "braid.meta.decision",
    "Constraints": "braid.meta.features",
    "DecisionNet": "braid.meta.net",
    "DecisionSpace": "braid.meta.net",
    "Infeasible": "braid.meta.agent",
    "MetaBraider": "braid.meta.agent",
    "MetaTask": "braid.meta.features",
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
        raise AttributeError(f"module 'braid.meta' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
