"""``braid train``'s YAML: a braid, a training recipe and data files (sections, or the seed's flat keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from braid.config import BraidConfig
from braid.train import TrainConfig


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    train: Path
    eval: Path | None = None


class TrainJob(BaseModel):
    """``braid train`` YAML: sections braid / train / data / output_dir.

    The seed's flat fusion_config.yaml style also works: top-level keys of BraidConfig or TrainConfig are
    moved into their section.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    braid: BraidConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    data: DataConfig
    output_dir: Path = Path("runs/braid")

    @model_validator(mode="before")
    @classmethod
    def _sections(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        for section, model in (("braid", BraidConfig), ("train", TrainConfig)):
            moved = {
                k: raw.pop(k) for k in list(raw) if k in model.model_fields and k not in cls.model_fields
            }
            if moved:
                raw[section] = {**moved, **dict(raw.get(section) or {})}
        return raw
