"""Ray runtime for braids: a member actor per model, a fusion actor leading the exchange, placement groups,
recovery from lost members, and fusion training on Ray Train."""

from cluster.placement import RayPlacement

__all__ = ["RayPlacement", "RayBraidedLLM"]


def __getattr__(name: str):
    if name == "RayBraidedLLM":
        from cluster.braid import RayBraidedLLM

        return RayBraidedLLM
    raise AttributeError(name)
