"""``braid train``'s YAML: a braid, a training recipe and data files (sections, or the seed's flat keys)."""

from __future__ import annotations

import os
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


def model_paths_from_env() -> list[str]:
    """MODEL_A_PATH, MODEL_B_PATH, ... (environment, then .env) in order, up to the first unset one."""
    from braid.paths import setting

    paths = []
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        if not (value := setting(f"MODEL_{letter}_PATH")):
            break
        paths.append(os.path.expanduser(value))
    return paths


def complete(
    raw: dict[str, Any],
    models: list[str] | None = None,
    data: Path | None = None,
    eval_data: Path | None = None,
    output_dir: Path | None = None,
    fusion_strategy: str | None = None,
) -> dict[str, Any]:
    """A ``braid train`` YAML completed from flags and settings: flags beat the file, which beats the
    environment, which beats ``.env``. Models come from ``models`` (flags), the file's ``model_configs``, or
    MODEL_A_PATH, MODEL_B_PATH, ...; the strategy from the flag, the file, or FUSION_STRATEGY; the data from
    flags or the file's ``data``. The seed's flat fusion_config.yaml (recipe keys only) works this way.
    Raises ValueError naming everything still missing."""
    from braid.paths import setting

    raw = dict(TrainJob._sections(dict(raw)))  # the seed's flat keys into their sections
    braid = dict(raw.get("braid") or {})
    if models:
        braid["model_configs"] = [{"model_name": m} for m in models]
    elif "model_configs" not in braid and (found := model_paths_from_env()):
        braid["model_configs"] = [{"model_name": m} for m in found]
    strategy = fusion_strategy or braid.get("fusion_strategy") or setting("FUSION_STRATEGY")
    if strategy:
        braid["fusion_strategy"] = strategy
    files = dict(raw.get("data") or {})
    if data is not None:
        files["train"] = data
    if eval_data is not None:
        files["eval"] = eval_data
    missing = []
    if len(braid.get("model_configs") or []) < 2:
        missing.append("models: give --model PATH at least twice, model_configs in the file, or MODEL_A_PATH "
                       "and MODEL_B_PATH (environment or .env)")  # fmt: skip
    if "train" not in files:
        missing.append("training data: give --data FILE (.txt, one example per line, or .jsonl) or data.train "
                       "in the file")  # fmt: skip
    if missing:
        raise ValueError("missing " + "; ".join(missing))
    out = {**raw, "braid": braid, "data": files}
    if output_dir is not None:
        out["output_dir"] = output_dir
    return out
