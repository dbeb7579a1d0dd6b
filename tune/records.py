"""Sweep records: one row per trial (task_info, pool features, config, metrics, cost). The meta-braider's
pretraining data. JSONL, versioned; the loader validates every row and names the line and field that are wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tune.space import BraidChoice
from tune.tasks import TaskInfo

RECORDS_VERSION = 1


class RecordsError(ValueError):
    pass


class ModelFeatures(BaseModel):
    """What the meta-braider knows of a pool model without loading it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    family: str
    domain: str
    tokenizer: str
    vocab_size: int = Field(ge=1)
    hidden: int = Field(ge=1)
    layers: int = Field(ge=1)
    parameters: int = Field(ge=1)
    train_steps: int = Field(ge=0)
    quantization: Literal["none", "8bit", "4bit"] = "none"
    held_out_char_perplexity: float | None = Field(None, gt=0)

    @classmethod
    def from_card(cls, card: dict) -> ModelFeatures:
        return cls(**{k: card[k] for k in cls.model_fields if k in card})


class Cost(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    trained_params: int = Field(ge=0)
    decode_ms: float = Field(gt=0, description="per generated token, greedy, batch 1")
    memory_mb: float = Field(gt=0, description="weights of members and fusion")


class SweepRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    version: Literal[1] = RECORDS_VERSION
    sweep: str
    trial_id: str
    task: TaskInfo
    pool: tuple[ModelFeatures, ...] = Field(min_length=2)
    config: BraidChoice
    metrics: dict[str, float]
    cost: Cost
    iterations: int = Field(ge=1, description="reports made (ASHA may stop a trial before its last)")
    steps_trained: int = Field(ge=0)
    stopped_early: bool
    checkpoint: str | None = Field(
        None,
        description="the trial's last checkpoint (fusion.safetensors inside): its trained fusion weights",
    )

    @model_validator(mode="after")
    def _consistent(self) -> SweepRecord:
        if missing := [m for m in ("score", self.task.metric) if m not in self.metrics]:
            raise ValueError(f"metrics lack {missing} (task metric is {self.task.metric!r})")
        names = {m.name for m in self.pool}
        if unknown := sorted(set(self.config.members) - names):
            raise ValueError(f"config members {unknown} are not in the pool {sorted(names)}")
        return self


def write_records(records: Iterable[SweepRecord], path: str | Path, append: bool = False) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w") as f:
        for r in records:
            f.write(r.model_dump_json() + "\n")
    return path


def load_records(path: str | Path) -> list[SweepRecord]:
    """Every row, validated; a malformed row raises RecordsError with its line number and field."""
    path = Path(path)
    if not path.exists():
        raise RecordsError(f"no records file at {path}")
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise RecordsError(f"{path}:{lineno}: not JSON: {e}") from None
        if isinstance(row, dict) and row.get("version", RECORDS_VERSION) != RECORDS_VERSION:
            raise RecordsError(
                f"{path}:{lineno}: records version {row.get('version')!r}, expected {RECORDS_VERSION}"
            )
        try:
            out.append(SweepRecord.model_validate(row))
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(row)"
            raise RecordsError(f"{path}:{lineno}: field {field!r}: {first['msg']}") from None
    return out
