"""Braid frozen causal LMs by exchanging hidden states at chosen layers.

``from braid import ModelWrapper, BraidedLLM, BraidConfig``
"""

from braid.braided import BraidedLLM, BraidOutput
from braid.config import BraidConfig, MemberConfig
from braid.model_wrapper import ModelWrapper

__all__ = ["BraidConfig", "BraidOutput", "BraidedLLM", "MemberConfig", "ModelWrapper"]
__version__ = "0.1.0"
