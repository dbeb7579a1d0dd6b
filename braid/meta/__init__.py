"""The meta-braider: learns which models to braid, where, how and with which parameters."""

from braid.meta.agent import Infeasible, MetaBraider
from braid.meta.decision import BraidingDecision
from braid.meta.features import Constraints, MetaTask
from braid.meta.net import DecisionNet, DecisionSpace

__all__ = [
    "BraidingDecision",
    "Constraints",
    "DecisionNet",
    "DecisionSpace",
    "Infeasible",
    "MetaBraider",
    "MetaTask",
]
