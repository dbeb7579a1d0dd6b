"""What a request's text says about its task, by rules: the meta-braider's view of a query when the caller
names no task (the gateway's, and ``MetaTask.of("some text")``). Light on purpose: the serving layer imports
it without loading torch."""

from __future__ import annotations

import re
from typing import Any

CODE = re.compile(r"```|\bdef \w+\(|\bclass \w+|\bimport \w+|\breturn\b|[{};]\s*$", re.M)
ARITHMETIC = re.compile(r"\d+\s*[-+*/x×÷]\s*\d+|\bsum of\b|\bhow much is\b", re.I)
QUESTION = re.compile(r"\?\s*$|^(what|who|when|where|which|why|how|is|are|does|do|can)\b", re.I)
FACT = re.compile(r"\b(value of|capital of|born|population|stands for|key)\b", re.I)


def infer_task(query: str, complexity: float | None = None) -> dict[str, Any]:
    """The meta-braider's view of a query when the request names no task: a type and capabilities by rules
    (code, arithmetic, fact question, question, plain text); the text embedding carries the rest."""
    if CODE.search(query):
        kind, caps = "code_completion", ("code", "syntax")
    elif ARITHMETIC.search(query):
        kind, caps = "arithmetic", ("arithmetic", "reasoning")
    elif FACT.search(query) and QUESTION.search(query.strip()):
        kind, caps = "fact_recall", ("recall", "knowledge")
    elif QUESTION.search(query.strip()):
        kind, caps = "qa", ("knowledge", "reasoning")
    else:
        kind, caps = "language_modeling", ("fluency",)
    if complexity is None:  # longer queries are harder, saturating at ~400 characters
        complexity = min(1.0, 0.2 + len(query) / 500)
    return {
        "type": kind,
        "complexity": round(complexity, 3),
        "capabilities": caps,
        "description": query[:500],
    }
