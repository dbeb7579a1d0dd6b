"""Members with their own tokenizer, read at the character level into the anchor's vocabulary."""

from braid.bridge.anchor_map import AnchorMap
from braid.bridge.bridge import BridgeParams, BridgeSession, CharBridge
from braid.bridge.surface import TokenSurface, is_lossy, word_start

__all__ = [
    "AnchorMap",
    "BridgeParams",
    "BridgeSession",
    "CharBridge",
    "TokenSurface",
    "is_lossy",
    "word_start",
]
