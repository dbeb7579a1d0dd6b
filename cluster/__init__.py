"""Ray runtime for braids: a member actor per model reached over TCP channels, placement groups, recovery
from lost members, a fusion actor (``FusionHost``) for a braid whose owner should not run the fusion, and
fusion training on Ray Train. ``BraidedLLM(..., placement="ray")`` is the entry point."""

from cluster.placement import RayPlacement

__all__ = ["RayPlacement"]
