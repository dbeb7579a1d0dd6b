"""Ray runtime for braids: model actors, fusion actor, exchange, placement, Ray Train (distributed issue)."""
