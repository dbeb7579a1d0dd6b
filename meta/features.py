"""What the meta-braider reads: a task (type, complexity, capabilities, constraints, a sentence embedding of
its description) and each pool model (size, depth, width, domain, quantization, recency, quality), as
fixed-size vectors.

Task types and domains are open sets: a known one gets its one-hot slot, an unseen one the "other" slot, and
the text embedding carries what it is like (that is how the agent transfers to unseen task types). Models are
read only through their features, so a model added to the pool needs no retraining to be considered.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from meta.requests import infer_task

KNOWN_TYPES = ("language_modeling", "code_completion", "arithmetic", "fact_recall", "qa", "reasoning")
KNOWN_CAPABILITIES = ("fluency", "code", "arithmetic", "recall", "reasoning", "knowledge", "syntax")
KNOWN_DOMAINS = ("prose", "code", "arithmetic", "facts", "general", "medical", "legal")
QUANTIZATIONS = ("none", "8bit", "4bit")
TEXT_DIM = 384  # all-MiniLM-L6-v2


class MetaTask(BaseModel):
    """A task as the meta-braider sees it. ``complexity`` is 0..1 (sweep records' 1..5 are rescaled)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    type: str = Field(min_length=1)
    complexity: float = Field(0.5, ge=0, le=1)
    capabilities: tuple[str, ...] = ()
    description: str = ""

    @classmethod
    def of(cls, task: Any) -> MetaTask:
        """From a MetaTask, a tune TaskInfo, a dict like the seed's ``{"type": "code", "complexity": 0.7}``, or
        the text of a request (``infer_task``)."""
        if isinstance(task, MetaTask):
            return task
        if isinstance(task, str):  # a query or prompt: typed by rules, described by its text
            return cls.model_validate(infer_task(task))
        data = task.model_dump() if isinstance(task, BaseModel) else dict(task)
        c = data.get("complexity", 0.5)
        if isinstance(c, int) and not isinstance(c, bool) and c > 1:  # TaskInfo's 1..5 scale
            data["complexity"] = (c - 1) / 4
        data.setdefault("description", f"{data.get('type', 'task')} task")
        return cls.model_validate(data)

    @field_validator("capabilities", mode="before")
    @classmethod
    def _as_tuple(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v


class Constraints(BaseModel):
    """Limits a decision must respect; None means unconstrained."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    compute_budget: float | None = Field(None, gt=0, le=1, description="share of the pool's total parameters")
    latency_requirement: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="max decode ms per token"
    )
    accuracy_target: float | None = Field(
        None,
        ge=0,
        le=1,
        description="min quality 0..1: the share of the best score measured for the task type "
        "(per-character likelihood relative to it; ``meta.calibration.share``)",
    )
    min_score: float | None = Field(
        None, allow_inf_nan=False, description="min raw score (log-likelihood scale)"
    )


def one_hot(value: str, vocab: tuple[str, ...]) -> list[float]:
    """len(vocab) + 1 slots; the last is "other"."""
    out = [0.0] * (len(vocab) + 1)
    out[vocab.index(value) if value in vocab else len(vocab)] = 1.0
    return out


@functools.lru_cache(maxsize=1)
def _embedder():
    from memory.embeddings import MiniLMEmbedder

    return MiniLMEmbedder()


@functools.lru_cache(maxsize=4096)
def text_embedding(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in _embedder().embed([text])[0])


TASK_DIM = len(KNOWN_TYPES) + 1 + 1 + len(KNOWN_CAPABILITIES) + 1 + 3 + TEXT_DIM


TARGET_RANGE = 10.0  # |min_score| the task encoding passes on as it is


def encode_task(task: MetaTask, constraints: Constraints | None = None) -> torch.Tensor:
    """(TASK_DIM,): type one-hot, complexity, capability multi-hot (+ other), constraint slots, text embedding."""
    c = constraints or Constraints()
    caps = [float(k in task.capabilities) for k in KNOWN_CAPABILITIES]
    caps.append(float(any(k not in KNOWN_CAPABILITIES for k in task.capabilities)))
    limits = [
        c.compute_budget or 1.0,
        math.log1p(c.latency_requirement) / 5 if c.latency_requirement else 0.0,
        # scores live in about [-10, 0]; a target far outside reads as its edge, not as an input the
        # network never saw (1e6 overflowed its predicted latency)
        min(max(c.min_score, -TARGET_RANGE), TARGET_RANGE) if c.min_score is not None else 0.0,
    ]
    row = one_hot(task.type, KNOWN_TYPES) + [task.complexity] + caps + limits
    row += list(text_embedding(f"{task.type}: {task.description}"))
    return torch.tensor(row, dtype=torch.float32)


MODEL_DIM = 8 + len(KNOWN_DOMAINS) + 1 + len(QUANTIZATIONS) + 1 + 2
TYPE_SLOTS = slice(0, len(KNOWN_TYPES) + 1)  # in a task row
DOMAIN_SLOTS = slice(8, 8 + len(KNOWN_DOMAINS) + 1)  # in a model row


def as_other(rows: torch.Tensor, slots: slice) -> torch.Tensor:
    """``rows`` (..., F) with the one-hot in ``slots`` moved to its "other" slot: the identity hidden."""
    rows = rows.clone()
    rows[..., slots] = 0.0
    rows[..., slots.stop - 1] = 1.0
    return rows


# which model domain serves which capability: a known pairing the affinity feature reads
SERVES = {"code": "code", "syntax": "code", "arithmetic": "arithmetic", "recall": "facts", "knowledge": "facts",
          "fluency": "prose"}  # fmt: skip


def affinity(task: MetaTask, model: dict) -> list[float]:
    """How well a model's domain fits a task: the cosine between the task's text and the domain's name, and
    the share of the task's capabilities the domain serves. Task-relative, so a rule learned on seen task
    types ("anchor the model that fits") carries over to unseen ones."""
    domain = model.get("domain", "general")
    a = torch.tensor(text_embedding(f"{task.type}: {task.description}"))
    b = torch.tensor(text_embedding(f"{domain} model, trained on {domain}"))
    cosine = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    served = [SERVES.get(c) == domain for c in task.capabilities]
    return [cosine, sum(served) / len(served) if served else 0.0]


def encode_model(model: Any, task: MetaTask | None = None) -> torch.Tensor:
    """(MODEL_DIM,) from a tune ``ModelFeatures`` (or a dict with its fields): sizes on log scales, domain,
    quantization, recency (training steps), held-out quality, and its affinity to ``task`` (0 without one)."""
    f = model.model_dump() if isinstance(model, BaseModel) else dict(model)
    ppl = f.get("held_out_char_perplexity")
    row = [
        math.log10(max(f["parameters"], 1)) / 10,
        math.log2(max(f["layers"], 1)) / 6,
        math.log2(max(f["hidden"], 1)) / 13,
        math.log2(max(f["vocab_size"], 1)) / 18,
        math.log10(1 + f.get("train_steps", 0)) / 6,
        f.get("recency", 0.5),
        math.log(ppl) / 5 if ppl else 0.0,
        float(ppl is None),
    ]
    row += one_hot(f.get("domain", "general"), KNOWN_DOMAINS)
    row += one_hot(f.get("quantization") or "none", QUANTIZATIONS)
    row += affinity(task, f) if task is not None else [0.0, 0.0]
    return torch.tensor(row, dtype=torch.float32)
