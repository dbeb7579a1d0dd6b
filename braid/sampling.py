"""``SamplingParams``: how a braid samples a continuation, one type for the library, the CLI and the server
(light: pydantic only, so the HTTP layer and the CLI validate a request before torch loads)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SamplingParams(BaseModel):
    """Greedy at temperature 0; else temperature, then top-k, then top-p. ``stop``: strings that end the
    text (not included); ``seed``: a sampled continuation repeats with the same seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_new_tokens: int = Field(default=200, ge=0)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=1)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, v: Any) -> Any:
        if v is None:
            return []
        return [v] if isinstance(v, str) else v
