"""Tasks and outcomes in the seed's shapes: a training task (``info``, ``data``, ``expected_output``), an
example of feedback (a task, the decision taken, how it went), and the scores that turn an output into a
0..1 performance.

Performance is 0..1 everywhere the seed passes it (``evaluate``, a 1-5 star rating / 5). The agent's own
score is a log-likelihood (``meta.quality`` maps between the two).
"""

from __future__ import annotations

import difflib
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from meta.decision import BraidingDecision

Metric = str | Callable[[str, str], float]
METRICS = ("exact", "similarity", "semantic")


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def evaluate(output: str, expected: str, metric: Metric = "similarity") -> float:
    """0..1: ``exact`` (after normalising case and spaces), ``similarity`` (difflib's ratio of the two
    normalised texts), ``semantic`` (cosine of MiniLM sentence embeddings, clipped at 0) or your function."""
    if callable(metric):
        return float(metric(output, expected))
    a, b = _normal(output), _normal(expected)
    if metric == "exact":
        return float(a == b)
    if metric == "similarity":
        return difflib.SequenceMatcher(None, a, b).ratio()
    if metric == "semantic":
        from meta.features import text_embedding

        x, y = text_embedding(a), text_embedding(b)
        dot = sum(i * j for i, j in zip(x, y, strict=True))
        norm = (sum(i * i for i in x) * sum(j * j for j in y)) ** 0.5
        return max(0.0, dot / norm) if norm else 0.0
    raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)} or a callable")


def sample_task(tasks: Sequence[Any], rng: random.Random | None = None) -> Any:
    """One task, uniformly (the seed's episode loop)."""
    if not tasks:
        raise ValueError("no tasks to sample from")
    return (rng or random).choice(list(tasks))


class Example(BaseModel):
    """One lesson for ``MetaBraider.learn_from_feedback(example)``: a task (``info`` / ``task_info`` /
    ``task``), and either an outcome (``decision`` with ``performance`` 0..1 or a 1-5 ``rating``) or what to
    run to get one (``data``, the prompt, and ``expected_output``, scored by ``metric``)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    info: dict[str, Any]
    data: str | None = None
    expected_output: str | None = None
    decision: BraidingDecision | None = None
    performance: float | None = Field(None, ge=0, le=1)
    rating: float | None = Field(None, ge=1, le=5, description="1-5 stars; performance = rating / 5")
    user: str | None = None
    metric: Any = "similarity"

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for alias in ("task_info", "task"):
                if alias in data and "info" not in data:
                    data["info"] = data.pop(alias)
            info = data.get("info")
            if isinstance(info, BaseModel):
                data["info"] = info.model_dump()
        return data

    @model_validator(mode="after")
    def _complete(self) -> Example:
        has_outcome = self.performance is not None or self.rating is not None
        if has_outcome and self.decision is None:
            raise ValueError("an example with a performance or rating needs the decision it rates")
        if not has_outcome and (self.data is None or self.expected_output is None):
            raise ValueError(
                "an example needs an outcome (decision + performance or rating) or something to run "
                "(data + expected_output)"
            )
        return self

    @property
    def outcome(self) -> float | None:
        """The 0..1 performance, when the example carries it."""
        return self.performance if self.performance is not None else (
            self.rating / 5 if self.rating is not None else None
        )  # fmt: skip


class UserTask(BaseModel):
    """A training task as the seed writes one: ``info`` (type, complexity, ...), ``data`` (the prompt) and
    ``expected_output``; ``metric`` scores an output against it."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    info: dict[str, Any]
    data: str = Field(min_length=1)
    expected_output: str
    metric: Any = "similarity"
    name: str = ""

    @model_validator(mode="after")
    def _named(self) -> UserTask:
        if not self.name:
            object.__setattr__(self, "name", f"{self.info.get('type', 'task')}: {self.data[:24]}")
        return self
