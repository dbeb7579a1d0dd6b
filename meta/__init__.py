"""The meta-braider: learns which models to braid, where, how and with which parameters."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meta.agent import Infeasible, MetaBraider
    from meta.decision import BraidingDecision, create_braided_model
    from meta.features import Constraints, MetaTask
    from meta.monitor import analyze_decision_patterns, log_decision, suggest_improvements
    from meta.net import DecisionNet, DecisionSpace
    from meta.outcomes import Example, UserTask, evaluate, sample_task
    from meta.trainer import MetaBraiderTrainer, train

# Loaded on first use, so `braid meta --help` never imports torch.
_EXPORTS = {
    "BraidingDecision": "meta.decision",
    "Constraints": "meta.features",
    "DecisionNet": "meta.net",
    "DecisionSpace": "meta.net",
    "Example": "meta.outcomes",
    "Infeasible": "meta.agent",
    "MetaBraider": "meta.agent",
    "MetaBraiderTrainer": "meta.trainer",
    "MetaTask": "meta.features",
    "UserTask": "meta.outcomes",
    "analyze_decision_patterns": "meta.monitor",
    "create_braided_model": "meta.decision",
    "evaluate": "meta.outcomes",
    "log_decision": "meta.monitor",
    "sample_task": "meta.outcomes",
    "suggest_improvements": "meta.monitor",
    "train": "meta.trainer",
}
__all__ = [
    "BraidingDecision",
    "Constraints",
    "DecisionNet",
    "DecisionSpace",
    "Example",
    "Infeasible",
    "MetaBraider",
    "MetaBraiderTrainer",
    "MetaTask",
    "UserTask",
    "analyze_decision_patterns",
    "create_braided_model",
    "evaluate",
    "log_decision",
    "sample_task",
    "suggest_improvements",
    "train",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'meta' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
